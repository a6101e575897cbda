package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"image"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/walprobe/walprobe/test/cluster"
	"github.com/walprobe/walprobe/test/fakes"
)

// binProbe is the walprobe binary running "run" until the test ends,
// which must stop it with status 0.
type binProbe struct{ *binProc }

// get fetches path from the probe's HTTP server.
func (w *binProbe) get(t *testing.T, path string) (int, []byte) {
	t.Helper()
	code, b, err := w.Get(t.Context(), path)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	return code, []byte(b)
}

// targetState returns name's state and lag from /v1/state ("" when absent).
func (w *binProbe) targetState(t *testing.T, name string) (string, float64) {
	t.Helper()
	_, b := w.get(t, "/v1/state")
	var st struct {
		Targets []struct {
			Name  string   `json:"name"`
			State string   `json:"state"`
			Lag   *float64 `json:"lag_seconds"`
		} `json:"targets"`
	}
	if err := json.Unmarshal(b, &st); err != nil {
		t.Fatalf("/v1/state: %v: %s", err, b)
	}
	for _, tg := range st.Targets {
		if tg.Name == name {
			lag := -1.0
			if tg.Lag != nil {
				lag = *tg.Lag
			}
			return tg.State, lag
		}
	}
	return "", -1
}

// runProbeBinary runs `walprobe run` with args, waits until it serves
// HTTP, and stops it with SIGTERM when the test ends, failing the test if
// it does not exit 0.
func runProbeBinary(t *testing.T, args ...string) *binProbe {
	t.Helper()
	w := &binProbe{startBin(t, nil, args...)}
	t.Cleanup(func() {
		if _, err := w.Terminate(10 * time.Second); err != nil {
			t.Errorf("walprobe exited with %v after SIGTERM, want 0", err)
		}
	})
	return w
}

// artifactDir is where tests keep files for people to look at after a
// run: $WALPROBE_ARTIFACTS, or test/e2e/testdata/artifacts (git-ignored).
func artifactDir(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("WALPROBE_ARTIFACTS")
	if dir == "" {
		dir = filepath.Join("testdata", "artifacts")
	}
	dir, err := filepath.Abs(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatalf("artifact dir %s: %v (set WALPROBE_ARTIFACTS to a writable directory)", dir, err)
	}
	return dir
}

// chromiumPath finds Debian's chromium or fails the test saying how to
// install it.
func chromiumPath(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "/usr/bin/chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Fatalf("chromium not found in PATH or at /usr/bin/chromium: the status page test needs a headless browser; install it with `apt-get install -y chromium`")
	return ""
}

// headless runs chromium headless on url with extra flags (--dump-dom,
// --screenshot=…) and returns its stdout. virtual time lets the page's
// script fetch and draw before the DOM is dumped or the shot taken; the
// flags keep it from reaching any other host (the page must need none).
func headless(ctx context.Context, t *testing.T, url string, extra ...string) []byte {
	t.Helper()
	profile := t.TempDir()
	args := []string{
		"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--disable-extensions", "--hide-scrollbars", "--user-data-dir=" + profile,
		"--virtual-time-budget=6000",
	}
	args = append(append(args, extra...), url)
	cctx, cancel := context.WithTimeout(ctx, 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(cctx, chromiumPath(t), args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("chromium %s: %v\n%s", strings.Join(extra, " "), err, lastLines(stderr.String(), 20))
	}
	return stdout.Bytes()
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// renderedRow is one target row of the rendered status table.
type renderedRow struct {
	state string
	lag   string
}

// renderedPage is what the DOM dump shows after the script ran.
type renderedPage struct {
	refreshes int
	rows      map[string]renderedRow
	points    map[string]plotted // target → what its canvas plotted
}

// plotted is what the script reports drawing on one canvas.
type plotted struct{ lag, delay int }

var (
	rowRE    = regexp.MustCompile(`(?s)<tr data-target="([^"]+)" data-state="([^"]+)">(.*?)</tr>`)
	lagRE    = regexp.MustCompile(`<td class="num lag">([^<]*)</td>`)
	canvasRE = regexp.MustCompile(`<canvas data-target="([^"]+)"[^>]*>`)
	attrRE   = regexp.MustCompile(`data-(lag|delay)-points="(\d+)"`)
	bodyRE   = regexp.MustCompile(`<body data-refreshes="(\d+)"`)
)

func parseRendered(dom string) renderedPage {
	p := renderedPage{rows: map[string]renderedRow{}, points: map[string]plotted{}}
	if m := bodyRE.FindStringSubmatch(dom); m != nil {
		p.refreshes, _ = strconv.Atoi(m[1])
	}
	for _, m := range rowRE.FindAllStringSubmatch(dom, -1) {
		r := renderedRow{state: m[2]}
		if l := lagRE.FindStringSubmatch(m[3]); l != nil {
			r.lag = l[1]
		}
		p.rows[m[1]] = r
	}
	for _, m := range canvasRE.FindAllStringSubmatch(dom, -1) {
		var pl plotted
		for _, a := range attrRE.FindAllStringSubmatch(m[0], -1) {
			n, _ := strconv.Atoi(a[2])
			if a[1] == "lag" {
				pl.lag = n
			} else {
				pl.delay = n
			}
		}
		p.points[m[1]] = pl
	}
	return p
}

// TestStatusPageInChromium loads the status page of the running binary in
// headless Chromium: the script must have filled the table from /v1/state
// and drawn each target's chart from /v1/history, and follow a standby
// whose WAL receiver is cut. A screenshot is kept as an artifact.
func TestStatusPageInChromium(t *testing.T) {
	chromiumPath(t) // fail before starting servers when the browser is missing
	ctx := context.Background()
	c := cluster.StartT(t, cluster.Options{Standbys: 1})
	w := runProbeBinary(t, "--primary", c.Primary.DSN("walprobe"),
		"--standby", "standby1="+c.Standbys[0].DSN("walprobe"),
		"--interval", "200ms", "--probe-id", "statuspage")
	url := "http://" + w.Addr + "/"

	fakes.WaitFor(t.Context(), t, 20*time.Second, "standby1 healthy", func() bool {
		s, _ := w.targetState(t, "standby1")
		return s == "healthy"
	})
	time.Sleep(3 * time.Second) // a few seconds of history to plot

	dir := artifactDir(t)
	// A 60 s window: 0.4 s buckets, so 3 s of history is several points.
	dom := string(headless(ctx, t, url+"?window=60s", "--dump-dom"))
	if err := os.WriteFile(filepath.Join(dir, "statuspage-healthy.html"), []byte(dom), 0o644); err != nil {
		t.Fatal(err)
	}
	page := parseRendered(dom)
	if page.refreshes < 1 {
		t.Fatalf("the page script never finished a refresh (data-refreshes=%d); DOM:\n%s", page.refreshes, dom)
	}
	for _, name := range []string{"standby1", "stream"} {
		row, ok := page.rows[name]
		if !ok {
			t.Fatalf("rendered table has no row for %s; rows %v", name, page.rows)
		}
		if row.state != "healthy" {
			t.Errorf("%s row state = %q, want healthy", name, row.state)
		}
		if row.lag == "" || row.lag == "—" {
			t.Errorf("%s row lag = %q, want a number", name, row.lag)
		}
		if pl := page.points[name]; pl.lag < 4 || pl.delay < 4 {
			t.Errorf("%s chart plotted %d lag and %d delay points, want at least 4 of each (3 s of history in 0.4 s buckets)", name, pl.lag, pl.delay)
		}
	}
	t.Logf("healthy: rows %v, points %v, refreshes %d", page.rows, page.points, page.refreshes)
	// The primary's view, turned into time: standby1's pg_stat_replication
	// row and the stream's temporary slot.
	if !strings.Contains(dom, `<tr data-consumer="standby1@127.0.0.1">`) {
		t.Errorf("the LSN-derived table has no row for standby1")
	}
	if strings.Contains(dom, c.Password) {
		t.Error("the rendered status page carries the canary password")
	}
	if strings.Contains(dom, `id="error" role="alert">refresh failed`) {
		t.Errorf("the page shows a refresh error: %s", regexp.MustCompile(`refresh failed[^<]*`).FindString(dom))
	}

	// Cut standby1 off: the page must show what /v1/state says (not
	// healthy, lag in seconds), proving the table is live data.
	if err := c.CutReceiver(ctx, c.Standbys[0]); err != nil {
		t.Fatal(err)
	}
	var cutState string
	fakes.WaitFor(t.Context(), t, 10*time.Second, "standby1 lagging after its receiver is cut", func() bool {
		s, lag := w.targetState(t, "standby1")
		cutState = s
		return s != "healthy" && lag >= 1.5
	})
	dom = string(headless(ctx, t, url, "--dump-dom"))
	if err := os.WriteFile(filepath.Join(dir, "statuspage-cut.html"), []byte(dom), 0o644); err != nil {
		t.Fatal(err)
	}
	page = parseRendered(dom)
	row := page.rows["standby1"]
	if row.state == "healthy" || row.state == "" {
		t.Errorf("standby1 row state after the cut = %q, want what /v1/state says (%s)", row.state, cutState)
	}
	if !strings.HasSuffix(row.lag, " s") {
		t.Errorf("standby1 row lag after the cut = %q, want seconds", row.lag)
	}
	if r := page.rows["stream"]; r.state != "healthy" {
		t.Errorf("stream row after the standby cut = %q, want healthy", r.state)
	}
	t.Logf("cut: standby1 %+v (api said %s)", row, cutState)

	// A ramp of at least 3 s makes the lag line plain in the shot.
	fakes.WaitFor(t.Context(), t, 10*time.Second, "standby1 lag of 3 s", func() bool {
		_, lag := w.targetState(t, "standby1")
		return lag >= 3
	})
	shot := filepath.Join(dir, "statuspage.png")
	_ = os.Remove(shot)
	// A 30 s window so the few seconds this test ran fill the charts.
	headless(ctx, t, url+"?window=30s", "--window-size=1200,800", "--screenshot="+shot)
	t.Logf("status page screenshot: %s", shot)
	checkScreenshot(t, shot)

	if err := c.RestoreReceiver(ctx, c.Standbys[0]); err != nil {
		t.Fatal(err)
	}
	fakes.WaitFor(t.Context(), t, 15*time.Second, "standby1 healthy after restore", func() bool {
		s, _ := w.targetState(t, "standby1")
		return s == "healthy"
	})

	// /readyz follows the beats, /healthz only the process: stop the
	// primary and readiness goes, liveness stays.
	if code, body := w.get(t, "/readyz"); code != 200 {
		t.Errorf("/readyz while beats are written = %d %s, want 200", code, body)
	}
	if err := c.Primary.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	stopped := time.Now()
	fakes.WaitFor(t.Context(), t, 15*time.Second, "/readyz 503 with the primary stopped", func() bool {
		code, _ := w.get(t, "/readyz")
		return code == 503
	})
	_, body := w.get(t, "/readyz")
	t.Logf("/readyz 503 %v after the primary stopped: %s", time.Since(stopped).Round(time.Millisecond), body)
	if code, _ := w.get(t, "/healthz"); code != 200 {
		t.Errorf("/healthz with the primary stopped = %d, want 200", code)
	}
	if strings.Contains(w.Logs(), c.Password) {
		t.Error("walprobe logs carry the canary password")
	}
}

// checkScreenshot: the PNG is 1200×800, not blank, and shows the lag
// line's colour (#d9480f), so a chart was drawn.
func checkScreenshot(t *testing.T, path string) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatalf("screenshot not written: %v", err)
	}
	defer f.Close()
	fi, _ := f.Stat()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatalf("screenshot %s is not a PNG: %v", path, err)
	}
	if b := img.Bounds(); b.Dx() != 1200 || b.Dy() != 800 {
		t.Errorf("screenshot is %dx%d, want 1200x800", b.Dx(), b.Dy())
	}
	ink, lagInk := inkCount(img)
	total := img.Bounds().Dx() * img.Bounds().Dy()
	t.Logf("screenshot %d bytes, %.1f%% non-white pixels, %d lag-coloured", fi.Size(), 100*float64(ink)/float64(total), lagInk)
	if fi.Size() < 20_000 || ink < total/50 {
		t.Errorf("screenshot looks blank: %d bytes, %d of %d pixels non-white", fi.Size(), ink, total)
	}
	// The legend swatches hold 30 such pixels per chart (two charts); the
	// lag ramp of a cut standby holds well over 100 more.
	if lagInk < 120 {
		t.Errorf("screenshot has %d pixels of the lag line colour, want a drawn lag line", lagInk)
	}
}

func inkCount(img image.Image) (ink, lag int) {
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			r, g, bl, _ := img.At(x, y).RGBA()
			r, g, bl = r>>8, g>>8, bl>>8
			if r < 240 || g < 240 || bl < 240 {
				ink++
			}
			if near8(r, 0xd9) && near8(g, 0x48) && near8(bl, 0x0f) {
				lag++
			}
		}
	}
	return ink, lag
}

func near8(a, b uint32) bool { return a+24 >= b && a <= b+24 }
