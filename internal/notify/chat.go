package notify

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/nicholas-fedor/shoutrrr/pkg/router"
	"github.com/nicholas-fedor/shoutrrr/pkg/types"
)

// chat sends a plain-text message through shoutrrr, which knows the APIs
// of Microsoft Teams, Discord, Mattermost, Google Chat, Telegram, Rocket.Chat,
// Matrix, Zulip, ntfy, Gotify and more; the receiver's URL names the
// service (teams://..., discord://...). The URL carries the service's token,
// so it is a secret: errors are stripped of it before they are logged.
type chat struct {
	url string
}

func (c *chat) send(ctx context.Context, d *delivery) error {
	sr, err := router.New(nil, c.url)
	if err != nil {
		return &permanentError{redact(fmt.Errorf("the shoutrrr URL cannot be used: %w", err), c.url)}
	}
	done := make(chan error, 1)
	go func() {
		// shoutrrr's services take no context; each bounds its own
		// request, so this goroutine ends soon after an abandoned attempt.
		// No params: a service refuses a key it does not know (not every
		// one has a title), so the title is the message's first line.
		errs := sr.Send(chatMessage(d.ev), &types.Params{})
		done <- errors.Join(errs...)
	}()
	select {
	case err := <-done:
		if err != nil {
			return redact(err, c.url)
		}
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// chatTitle is the first line of the message: the outcome and what.
func chatTitle(ev Event) string {
	mark := "✅"
	switch {
	case ev.Type == DriftDetected:
		mark = "⚠️"
	case ev.Type == DeployStarted:
		mark = "⏳"
	case !ev.Success:
		mark = "❌"
	}
	return mark + " " + ev.Summary
}

// chatMessage is the event as a few lines of text that read well in every
// chat system: the title, the facts, the error, the stage times and the
// link.
func chatMessage(ev Event) string {
	var b strings.Builder
	b.WriteString(chatTitle(ev) + "\n")
	line := func(name, value string) {
		if value != "" {
			fmt.Fprintf(&b, "%s: %s\n", name, value)
		}
	}
	for _, f := range facts(ev, ev.Image, ", ") {
		line(f[0], f[1])
	}
	if ev.Error != "" {
		line("Failed at", ev.Stage)
		line("Error", truncate(ev.Error, 1500))
	}
	line("Times", stageTimes(ev.Seconds))
	line("Link", ev.URL)
	return strings.TrimRight(b.String(), "\n")
}

// redact removes the secret URL and each of its parts (user, password,
// path segments, query values) from err's text. Parts shorter than six
// characters ("api", "hooks") are kept: they are not credentials and
// replacing them would garble the message.
func redact(err error, secret string) error {
	if err == nil || secret == "" {
		return err
	}
	msg := strings.ReplaceAll(err.Error(), secret, "<url>")
	var parts []string
	if u, perr := url.Parse(secret); perr == nil {
		parts = append(parts, u.User.Username())
		if p, ok := u.User.Password(); ok {
			parts = append(parts, p)
		}
		parts = append(parts, strings.Split(u.Path, "/")...)
		for _, vs := range u.Query() {
			parts = append(parts, vs...)
		}
		parts = append(parts, u.Host)
	}
	for _, p := range parts {
		if len(p) >= 6 {
			msg = strings.ReplaceAll(msg, p, "***")
		}
	}
	return errors.New(msg)
}
