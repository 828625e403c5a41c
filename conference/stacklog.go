package conference

import (
	"context"
	"log/slog"

	"github.com/emiago/sipgo/sip"
)

// stackLogger is the logger sipgo's layers get: every record at Debug.
// sipgo logs network events as errors (a connection reset, a message it
// cannot parse), which a stranger makes as often as it likes; mcc logs
// what matters to an operator itself, at its own levels.
func stackLogger(l *slog.Logger) *slog.Logger {
	return slog.New(demoted{l.Handler()})
}

type demoted struct{ h slog.Handler }

func (d demoted) Enabled(ctx context.Context, _ slog.Level) bool {
	return d.h.Enabled(ctx, slog.LevelDebug)
}

func (d demoted) Handle(ctx context.Context, r slog.Record) error {
	r.Level = slog.LevelDebug
	return d.h.Handle(ctx, r)
}

func (d demoted) WithAttrs(as []slog.Attr) slog.Handler { return demoted{d.h.WithAttrs(as)} }
func (d demoted) WithGroup(g string) slog.Handler       { return demoted{d.h.WithGroup(g)} }

// SetStackLogger sends what sipgo logs through its package-wide logger
// (connection bookkeeping, which no Config reaches) to l, at Debug. It sets
// process-wide state: call it once, before New; mcc serve does.
func SetStackLogger(l *slog.Logger) {
	sip.SetDefaultLogger(stackLogger(l.With("component", "sip")))
}
