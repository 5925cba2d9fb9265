package secrets

import (
	"context"
	"log/slog"
)

// Handler returns a slog.Handler that masks the message and every string,
// error and stringer attribute before h sees them. With an empty Masker it
// returns h.
func (m *Masker) Handler(h slog.Handler) slog.Handler {
	if m.Empty() {
		return h
	}
	return &maskHandler{h: h, m: m}
}

// Logger returns log with a masking handler (see Handler).
func (m *Masker) Logger(log *slog.Logger) *slog.Logger {
	if m.Empty() || log == nil {
		return log
	}
	return slog.New(m.Handler(log.Handler()))
}

type maskHandler struct {
	h slog.Handler
	m *Masker
}

func (h *maskHandler) Enabled(ctx context.Context, l slog.Level) bool { return h.h.Enabled(ctx, l) }

func (h *maskHandler) Handle(ctx context.Context, r slog.Record) error {
	out := slog.NewRecord(r.Time, r.Level, h.m.Mask(r.Message), r.PC)
	r.Attrs(func(a slog.Attr) bool {
		out.AddAttrs(h.attr(a))
		return true
	})
	return h.h.Handle(ctx, out)
}

func (h *maskHandler) attr(a slog.Attr) slog.Attr {
	v := a.Value.Resolve()
	switch v.Kind() {
	case slog.KindString:
		return slog.String(a.Key, h.m.Mask(v.String()))
	case slog.KindGroup:
		as := v.Group()
		out := make([]any, len(as))
		for i, x := range as {
			out[i] = h.attr(x)
		}
		return slog.Group(a.Key, out...)
	case slog.KindAny:
		switch x := v.Any().(type) {
		case error:
			return slog.String(a.Key, h.m.Mask(x.Error()))
		case interface{ String() string }:
			return slog.String(a.Key, h.m.Mask(x.String()))
		}
	}
	return slog.Attr{Key: a.Key, Value: v}
}

func (h *maskHandler) WithAttrs(as []slog.Attr) slog.Handler {
	out := make([]slog.Attr, len(as))
	for i, a := range as {
		out[i] = h.attr(a)
	}
	return &maskHandler{h: h.h.WithAttrs(out), m: h.m}
}

func (h *maskHandler) WithGroup(name string) slog.Handler {
	return &maskHandler{h: h.h.WithGroup(name), m: h.m}
}
