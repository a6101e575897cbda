package webhook

import (
	"context"
	"fmt"
	"log/slog"
	"net/url"
	"regexp"
)

// leveledLogger adapts slog to retryablehttp.LeveledLogger. retryablehttp
// logs the request URL with only its password masked; every string value
// is scrubbed to scheme://host first, so a token in the path or query
// never reaches a log.
type leveledLogger struct{ l *slog.Logger }

var urlRe = regexp.MustCompile(`https?://[^\s"']+`)

// hostOnly rewrites every URL in s to scheme://host.
func hostOnly(s string) string {
	return urlRe.ReplaceAllStringFunc(s, func(m string) string {
		u, err := url.Parse(m)
		if err != nil || u.Host == "" {
			return "[url]"
		}
		return u.Scheme + "://" + u.Host
	})
}

func (a leveledLogger) log(level slog.Level, msg string, kv []any) {
	args := make([]any, 0, len(kv))
	for i, v := range kv {
		if i%2 == 1 {
			switch x := v.(type) {
			case string:
				v = hostOnly(x)
			case error:
				v = hostOnly(x.Error())
			case fmt.Stringer:
				v = hostOnly(x.String())
			}
		}
		args = append(args, v)
	}
	a.l.Log(context.Background(), level, msg, args...)
}

// retryablehttp logs each failed attempt as an error; a retried attempt
// needs nobody, so it is Debug. Notifier warns once when it gives up.
func (a leveledLogger) Error(msg string, kv ...any) { a.log(slog.LevelDebug, msg, kv) }
func (a leveledLogger) Warn(msg string, kv ...any)  { a.log(slog.LevelWarn, msg, kv) }
func (a leveledLogger) Info(msg string, kv ...any)  { a.log(slog.LevelDebug, msg, kv) }
func (a leveledLogger) Debug(msg string, kv ...any) { a.log(slog.LevelDebug, msg, kv) }
