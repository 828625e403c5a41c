package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"mcc/internal/peertest"
)

// webDriver is a W3C WebDriver session with ChromeDriver, over HTTP.
type webDriver struct {
	t    *testing.T
	base string // http://127.0.0.1:PORT/session/ID
}

const elementKey = "element-6066-11e4-a52e-4f735466cecf"

func (d *webDriver) call(method, path string, in any) json.RawMessage {
	d.t.Helper()
	out, err := wdCall(method, d.base+path, in)
	if err != nil {
		d.t.Fatalf("WebDriver %s %s: %v", method, path, err)
	}
	return out
}

func wdCall(method, url string, in any) (json.RawMessage, error) {
	var body io.Reader
	if in != nil {
		b, _ := json.Marshal(in)
		body = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, url, body)
	req.Header.Set("Content-Type", "application/json")
	res, err := (&http.Client{Timeout: 60 * time.Second}).Do(req)
	if err != nil {
		return nil, err
	}
	defer res.Body.Close()
	var v struct {
		Value json.RawMessage `json:"value"`
	}
	if err := json.NewDecoder(res.Body).Decode(&v); err != nil {
		return nil, err
	}
	if res.StatusCode != 200 {
		return nil, fmt.Errorf("%s: %s", res.Status, v.Value)
	}
	return v.Value, nil
}

func (d *webDriver) open(url string) { d.call("POST", "/url", map[string]string{"url": url}) }

func (d *webDriver) find(css string) string {
	d.t.Helper()
	var e map[string]string
	json.Unmarshal(d.call("POST", "/element", map[string]string{"using": "css selector", "value": css}), &e)
	return e[elementKey]
}

func (d *webDriver) typeInto(css, text string) {
	d.call("POST", "/element/"+d.find(css)+"/value", map[string]string{"text": text})
}

// click clicks the element css finds, finding it again when the page
// replaced it in between (the live part is redrawn on each event).
func (d *webDriver) click(css string) {
	d.t.Helper()
	for try := 0; ; try++ {
		_, err := wdCall("POST", d.base+"/element/"+d.find(css)+"/click", map[string]any{})
		if err == nil {
			return
		}
		if !strings.Contains(err.Error(), "stale element") || try == 10 {
			d.t.Fatalf("WebDriver click %s: %v", css, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// js runs script in the page and decodes what it returns into out.
func (d *webDriver) js(out any, script string, args ...any) {
	d.t.Helper()
	if args == nil {
		args = []any{}
	}
	raw := d.call("POST", "/execute/sync", map[string]any{"script": script, "args": args})
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			d.t.Fatalf("script result %s: %v", raw, err)
		}
	}
}

// until waits for script to return true in the page, up to d.
func (d *webDriver) until(what string, within time.Duration, script string) {
	d.t.Helper()
	deadline := time.Now().Add(within)
	for {
		var ok bool
		d.js(&ok, script)
		if ok {
			return
		}
		if time.Now().After(deadline) {
			var html string
			d.js(&html, "return document.body.innerHTML")
			d.t.Fatalf("timed out waiting for %s; the page:\n%s", what, html)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// TestDashboardInChromium: mcc serve runs on its defaults in namespace
// A, linphone in B. Headless Chromium (Debian's, through ChromeDriver)
// in A signs in to the dashboard with the token; a dial-in whose display
// name is markup and script appears in the roster without a reload, as
// text, with nothing of it run; the page's invite form reaches linphone,
// which joins (and B joins the group); an mcc probe in A, hearing
// ffmpeg, fills the reception matrix. The test's run in A is
// TestDashboardChild; MCC_SCREENSHOT=FILE keeps its screenshot.
func TestDashboardInChromium(t *testing.T) {
	peertest.Need(t, "chromium", "chromedriver", "ffmpeg")
	w := newWireLecture(t)
	ctx, cancel := context.WithTimeout(context.Background(), 150*time.Second)
	defer cancel()
	w.cli("session", "create", "lab", "--media", "audio")
	shot := filepath.Join(t.TempDir(), "dashboard.png")
	child := in(ctx, w.n.a, os.Args[0], "-test.run=^TestDashboardChild$", "-test.v", "-test.timeout=140s")
	child.Env = append(os.Environ(), "MCC_DASHBOARD="+strings.Join([]string{w.data, mccBinary(t), shot, w.n.b}, ","))
	var out peertest.Output
	child.Stdout, child.Stderr = &out, &out
	err := child.Run()
	t.Logf("in A:\n%s", out.String())
	if err != nil || !strings.Contains(out.String(), "--- PASS: TestDashboardChild") {
		t.Fatalf("the browser run in A: %v", err)
	}
	if keep := os.Getenv("MCC_SCREENSHOT"); keep != "" {
		b, err := os.ReadFile(shot)
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(keep, b, 0o644)
	}
}

func TestDashboardChild(t *testing.T) {
	spec := os.Getenv("MCC_DASHBOARD")
	if spec == "" {
		t.Skip("the browser run of TestDashboardInChromium; runs only in the namespace that test creates")
	}
	f := strings.Split(spec, ",")
	data, bin, shot, nsB := f[0], f[1], f[2], f[3]
	ctx, cancel := context.WithTimeout(context.Background(), 130*time.Second)
	defer cancel()
	mcc := func(args ...string) string {
		t.Helper()
		out, err := exec.CommandContext(ctx, bin, append(args, "--data", data)...).CombinedOutput()
		if err != nil {
			t.Fatalf("mcc %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	token, err := os.ReadFile(filepath.Join(data, "token"))
	if err != nil {
		t.Fatal(err)
	}
	api, _ := os.ReadFile(filepath.Join(data, "api.addr"))
	base := "http://" + strings.TrimSpace(string(api))
	start := func(name string, args ...string) *exec.Cmd {
		t.Helper()
		cmd := exec.CommandContext(ctx, name, args...)
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
		var out peertest.Output
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
			waitOrKill(cmd, 3*time.Second)
			if t.Failed() {
				t.Logf("%s: %s", name, tail([]byte(out.String()), 3000))
			}
		})
		return cmd
	}

	// Something to receive: ffmpeg sends the session's audio, a probe
	// here reports it.
	desc := mcc("session", "sdp", "lab")
	sdpFile := filepath.Join(t.TempDir(), "lab.sdp")
	os.WriteFile(sdpFile, []byte(desc), 0o644)
	var group, port string
	for _, l := range strings.Split(desc, "\r\n") {
		if g, ok := strings.CutPrefix(l, "c=IN IP4 "); ok {
			group, _, _ = strings.Cut(g, "/")
		}
		if m, ok := strings.CutPrefix(l, "m=audio "); ok {
			port, _, _ = strings.Cut(m, " ")
		}
	}
	start("ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-re", "-f", "lavfi", "-i", "sine=sample_rate=8000:samples_per_frame=160",
		"-t", "90", "-ac", "1", "-c:a", "pcm_mulaw", "-payload_type", "0", "-f", "rtp", "rtp://"+group+":"+port+"?ttl=1&localaddr=10.98.0.1")
	start(bin, "probe", "lab", "--data", data, "--name", "studio-probe", "--interval", "1s", "--for", "100s")

	// ChromeDriver, and a headless Chromium with nothing of its own
	// reaching out (this machine's network is closed).
	start("chromedriver", "--port=9515")
	var sessID string
	for try := 0; ; try++ {
		raw, err := wdCall("POST", "http://127.0.0.1:9515/session", map[string]any{"capabilities": map[string]any{"alwaysMatch": map[string]any{
			"browserName": "chrome",
			"goog:chromeOptions": map[string]any{"binary": "/usr/bin/chromium", "args": []string{
				"--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic", "--no-first-run",
				"--disable-background-networking", "--disable-component-update", "--disable-sync", "--window-size=1400,1200",
				"--user-data-dir=" + t.TempDir()}},
		}}})
		if err == nil {
			var v struct{ SessionID string }
			json.Unmarshal(raw, &v)
			sessID = v.SessionID
			break
		}
		if try > 50 {
			t.Fatalf("no ChromeDriver session: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	d := &webDriver{t: t, base: "http://127.0.0.1:9515/session/" + sessID}
	defer wdCall("DELETE", d.base, nil)

	// Sign in with the token.
	d.open(base + "/ui/")
	d.until("the sign-in page", 10*time.Second, `return !!document.querySelector("#token")`)
	d.typeInto("#token", strings.TrimSpace(string(token)))
	d.click("#signin")
	d.until("the overview with the conference", 10*time.Second, `return !!document.querySelector('#conferences a[href="/ui/c/lab"]')`)
	var cookies string
	d.js(&cookies, "return document.cookie")
	if strings.Contains(cookies, "mcc_session") {
		t.Fatalf("the session cookie is readable from the page: %q", cookies)
	}
	d.click(`#conferences a[href="/ui/c/lab"]`)
	d.until("the conference page", 10*time.Second, `return !!document.querySelector("#roster")`)
	d.js(nil, "window.mccMarker = 42") // gone if the page reloads

	// A hostile dial-in appears live, as text.
	scenario, _ := filepath.Abs("testdata/hostile-caller.xml")
	start("sipp", "-sf", scenario, "-s", "lab", "-i", "127.0.0.1", "-p", "5090", "-m", "1", "-d", "60000", "-nostdin", "-timeout", "90", "127.0.0.1:5060")
	hostile := "<img src=x onerror=alert(1)><script>document.title=1</script>Eve"
	d.until("the hostile caller joined, shown without a reload", 20*time.Second,
		`return window.mccMarker === 42 && [...document.querySelectorAll("#roster tr")].some(tr => tr.querySelector(".name") && tr.querySelector(".name").textContent === `+jsString(hostile)+` && tr.className === "state-joined")`)
	var injected bool
	d.js(&injected, `return document.title === "1" || !!document.querySelector('#roster img, #roster script')`)
	if injected {
		t.Fatal("the display name became markup in the page")
	}

	// The invite form reaches linphone in B.
	d.typeInto("#invite-uri", "sip:participant@10.98.0.2:5060")
	d.click(`#invite button[type="submit"]`)
	d.until("the invitation's confirmation", 10*time.Second, `return !!document.querySelector("#flash")`)
	d.until("linphone joined", 30*time.Second,
		`return [...document.querySelectorAll("#roster tr")].some(tr => tr.querySelector(".uri") && tr.querySelector(".uri").textContent.includes("participant@10.98.0.2") && tr.className === "state-joined")`)
	out, _ := exec.Command("ip", "netns", "exec", nsB, "ip", "maddr", "show", "dev", "mcc1").CombinedOutput()
	if !strings.Contains(string(out), group) {
		t.Fatalf("linphone's namespace did not join %s:\n%s", group, out)
	}

	// The probe's row in the matrix, coloured.
	d.until("the probe's row in the reception matrix", 20*time.Second,
		`return [...document.querySelectorAll("table.matrix tbody th")].some(th => th.textContent.includes("studio-probe")) && !!document.querySelector("table.matrix td.ok, table.matrix td.warn")`)
	time.Sleep(1500 * time.Millisecond) // a report or two more, for the picture
	var png string
	json.Unmarshal(d.call("GET", "/screenshot", nil), &png)
	b, err := base64.StdEncoding.DecodeString(png)
	if err != nil || len(b) < 1000 {
		t.Fatalf("screenshot: %v (%d bytes)", err, len(b))
	}
	os.WriteFile(shot, b, 0o644)
	t.Logf("dashboard in Chromium: signed in, hostile name shown as text, linphone invited from the page and joined %s, probe row shown", group)
}

func jsString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}
