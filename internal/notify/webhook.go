package notify

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"strings"
)

// Headers of the generic webhook.
const (
	// SignatureHeader carries "sha256=" and the hex HMAC-SHA256 of the body
	// keyed with the receiver's secret (as GitHub's X-Hub-Signature-256).
	SignatureHeader = "X-Mgo-Signature-256"
	EventHeader     = "X-Mgo-Event"    // the event type
	DeliveryHeader  = "X-Mgo-Delivery" // the same on every retry of one delivery
)

// webhook posts the Event as JSON, signed when it has a secret.
type webhook struct {
	url    string
	secret []byte
	client *http.Client
}

func (w *webhook) send(ctx context.Context, d *delivery) error {
	body, err := json.Marshal(d.ev)
	if err != nil {
		return &permanentError{err}
	}
	h := http.Header{}
	h.Set(EventHeader, d.ev.Type)
	h.Set(DeliveryHeader, d.id)
	if len(w.secret) > 0 {
		h.Set(SignatureHeader, Sign(w.secret, body))
	}
	_, err = post(ctx, w.client, w.url, h, body)
	return err
}

// Sign returns the signature header value of body: "sha256=<hex HMAC>".
func Sign(secret, body []byte) string {
	m := hmac.New(sha256.New, secret)
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

// Verify reports whether header is the signature of body with secret, in
// constant time: what a receiver of the generic webhook does.
func Verify(secret, body []byte, header string) bool {
	got, ok := strings.CutPrefix(header, "sha256=")
	if !ok {
		return false
	}
	sig, err := hex.DecodeString(got)
	if err != nil {
		return false
	}
	m := hmac.New(sha256.New, secret)
	m.Write(body)
	return hmac.Equal(sig, m.Sum(nil))
}
