package notify

import (
	"strings"
	"testing"

	"github.com/mygitops/mgo/internal/outbound"
	"github.com/mygitops/mgo/internal/repo"
)

// A receiver at 127.0.0.1 is reached when the notifications list allows it,
// and dropped at once, without retries, when only 127.0.0.2 is allowed; the
// log names the receiver and the address, not the URL's secret.
func TestReceiverOutsideTheOutboundListIsDropped(t *testing.T) {
	rcv := newReceiver(t, false, nil)
	for _, tc := range []struct {
		allow string
		sent  bool
	}{{"127.0.0.1", true}, {"127.0.0.2", false}} {
		p, err := outbound.Parse(outbound.Notifications, []string{tc.allow})
		if err != nil {
			t.Fatal(err)
		}
		d, m, logs := start(t, repo.Notifications{
			Receivers: []repo.Receiver{{Name: "hook", Type: repo.ReceiverWebhook, URL: rcv.URL + "/hook?token=TOPSECRET"}},
			Routes:    []repo.Route{route("hook")},
		}, nil, func(o *Options) { o.Outbound = p; o.Attempts = 3 })
		before := rcv.count()
		d.Notify(deployEvent(DeploySucceeded, "prod"))
		if tc.sent {
			waitFor(t, "the delivery", func() bool { return counter(m, "hook", "sent") == 1 })
			continue
		}
		waitFor(t, "the drop", func() bool { return counter(m, "hook", "dropped") == 1 })
		out := logs.String()
		if rcv.count() != before || counter(m, "hook", "retried") != 0 {
			t.Errorf("refused receiver: %d requests, %v retries", rcv.count()-before, counter(m, "hook", "retried"))
		}
		if !strings.Contains(out, "receiver=hook") || !strings.Contains(out, "127.0.0.1") || strings.Contains(out, "TOPSECRET") {
			t.Errorf("log:\n%s", out)
		}
	}
}

func TestChatReceiverRefusedUnderAnOutboundList(t *testing.T) {
	p, _ := outbound.Parse(outbound.Notifications, []string{"127.0.0.1"})
	d, m, logs := start(t, repo.Notifications{
		Receivers: []repo.Receiver{{Name: "team", Type: repo.ReceiverShoutrrr, URL: "generic://127.0.0.1:1/x?token=TOPSECRET"}},
		Routes:    []repo.Route{route("team")},
	}, nil, func(o *Options) { o.Outbound = p })
	d.Notify(deployEvent(DeploySucceeded, "prod"))
	waitFor(t, "the drop", func() bool { return counter(m, "team", "dropped") == 1 })
	if out := logs.String(); !strings.Contains(out, "cannot be bounded") || strings.Contains(out, "TOPSECRET") {
		t.Errorf("log:\n%s", out)
	}
}
