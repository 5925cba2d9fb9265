package notify

import (
	"context"
	"fmt"
	"net/http"
	"strings"
)

// slack posts a Block Kit message to an incoming webhook.
type slack struct {
	url    string
	client *http.Client
}

func (s *slack) send(ctx context.Context, d *delivery) error {
	_, err := post(ctx, s.client, s.url, nil, slackMessage(d.ev))
	return err
}

type block = map[string]any

func mrkdwn(s string) block { return block{"type": "mrkdwn", "text": s} }

// slackMessage is the event as a Block Kit message: a header, the facts
// as fields, the error, the stage times and a link; the attachment's
// colour shows the outcome at a glance.
func slackMessage(ev Event) map[string]any {
	icon, color := ":white_check_mark:", "#2eb886"
	if !ev.Success {
		icon, color = ":x:", "#d00000"
	}
	if ev.Type == DriftDetected {
		icon, color = ":warning:", "#daa038"
	}
	var fields []block
	add := func(name, value string) {
		if value != "" && len(fields) < 10 { // Slack allows ten fields of 2000 characters
			fields = append(fields, mrkdwn(truncate("*"+name+"*\n"+value, 2000)))
		}
	}
	image := ev.Image
	if image != "" {
		image = "`" + image + "`"
	}
	for _, f := range facts(ev, image, "\n") {
		add(f[0], f[1])
	}
	blocks := []block{
		{"type": "header", "text": block{"type": "plain_text", "text": truncate(ev.Type+" on "+ev.Cluster, 150)}},
		{"type": "section", "text": mrkdwn(truncate(icon+" "+ev.Summary, 3000))},
	}
	if len(fields) > 0 {
		blocks = append(blocks, block{"type": "section", "fields": fields})
	}
	if ev.Error != "" {
		msg := ev.Error
		if ev.Stage != "" {
			msg = "failed at stage *" + ev.Stage + "*: " + msg
		}
		blocks = append(blocks, block{"type": "section", "text": mrkdwn(truncate(msg, 3000))})
	}
	var ctxs []block
	if ev.DeploymentID != "" {
		ctxs = append(ctxs, mrkdwn("deployment `"+ev.DeploymentID+"`"))
	}
	if t := stageTimes(ev.Seconds); t != "" {
		ctxs = append(ctxs, mrkdwn(t))
	}
	if len(ctxs) > 0 {
		blocks = append(blocks, block{"type": "context", "elements": ctxs})
	}
	if ev.URL != "" {
		blocks = append(blocks, block{"type": "actions", "elements": []block{{
			"type": "button", "text": block{"type": "plain_text", "text": "Open in mgo"}, "url": ev.URL,
		}}})
	}
	return map[string]any{
		"text":        ev.Summary, // the notification's text and the fallback
		"attachments": []block{{"color": color, "blocks": blocks}},
	}
}

// facts are the event's details as name and value, in the order messages
// show them; image is the image as the message writes it, sep joins the
// releases. Empty values are left to the caller to skip.
func facts(ev Event, image, sep string) [][2]string {
	var rels []string
	for _, r := range ev.Releases {
		s := r.Namespace + "/" + r.Name
		if r.Action != "" {
			s += " (" + r.Action + ")"
		}
		rels = append(rels, s)
	}
	out := [][2]string{{"Cluster", ev.Cluster}, {"Image", image}, {"Releases", strings.Join(rels, sep)},
		{"Commit", short(ev.Commit)}, {"Source commit", short(ev.SourceCommit)}, {"Author", ev.Author}, {"Requested by", ev.Requester}}
	if ev.Objects > 0 {
		out = append(out, [2]string{"Objects", fmt.Sprint(ev.Objects)})
	}
	return out
}

// stageTimes lists the stage times in pipeline order: "pushed 1.2s · synced 3.4s".
func stageTimes(seconds map[string]float64) string {
	var parts []string
	for _, k := range []string{"committed", "pushed", "synced", "rolledOut", "total"} {
		if v, ok := seconds[k]; ok && v > 0 {
			parts = append(parts, fmt.Sprintf("%s %.1fs", k, v))
		}
	}
	return strings.Join(parts, " · ")
}

func short(sha string) string {
	if len(sha) > 12 {
		return sha[:12]
	}
	return sha
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return strings.ToValidUTF8(s[:n-1], "") + "…"
}
