package api

import (
	"context"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strings"
	"testing"
	"time"

	"mcc/conference"
	"mcc/multicast/reception"
	"mcc/sdp"
)

// TestDashboardAuth: the pages need the session cookie that the token
// is exchanged for (HttpOnly, SameSite=Strict); every action needs the
// session's CSRF token and this origin; what came from the network (a
// receiver's name here) is escaped; the page loads nothing from
// elsewhere (its CSP says so) and the templates are not served.
func TestDashboardAuth(t *testing.T) {
	cl, _ := newAPI(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := cl.Do(ctx, "POST", "/v1/sessions", SessionRequest{Name: "lab", Media: []string{"audio"}}, nil); err != nil {
		t.Fatal(err)
	}
	hostile := `<img src=x onerror=alert(1)>`
	var raw []byte
	if err := cl.Do(ctx, "GET", "/v1/sessions/lab/sdp", nil, &raw); err != nil {
		t.Fatal(err)
	}
	desc, err := sdp.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	m := desc.Media[0]
	rep := conference.ReceiverReport{Receiver: hostile, Streams: []reception.StreamReport{{Index: 0, Group: desc.EffectiveConnection(m).Addr, Port: int(m.Port)}}}
	if err := cl.Do(ctx, "POST", "/v1/sessions/lab/reception", rep, nil); err != nil {
		t.Fatal(err)
	}
	jar, _ := cookiejar.New(nil)
	hc := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	get := func(path string) (*http.Response, string) {
		t.Helper()
		res, err := hc.Get(cl.Base + path)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		return res, string(b)
	}
	post := func(path string, form url.Values, origin string) *http.Response {
		t.Helper()
		req, _ := http.NewRequest("POST", cl.Base+path, strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if origin != "" {
			req.Header.Set("Origin", origin)
		}
		res, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		return res
	}
	if res, _ := get("/ui/"); res.StatusCode != http.StatusSeeOther || res.Header.Get("Location") != "/ui/login" {
		t.Fatalf("signed out, /ui/ gives %d to %q", res.StatusCode, res.Header.Get("Location"))
	}
	if res, _ := get("/ui/c/lab/live"); res.StatusCode != http.StatusUnauthorized {
		t.Fatalf("signed out, the live part gives %d", res.StatusCode)
	}
	if res := post("/ui/login", url.Values{"token": {"guess"}}, ""); res.StatusCode != http.StatusUnauthorized {
		t.Fatalf("a wrong token signs in: %d", res.StatusCode)
	}
	res := post("/ui/login", url.Values{"token": {cl.Token}}, "")
	var cookie *http.Cookie
	for _, c := range res.Cookies() {
		if c.Name == sessionCookie {
			cookie = c
		}
	}
	if res.StatusCode != http.StatusSeeOther || cookie == nil || !cookie.HttpOnly || cookie.SameSite != http.SameSiteStrictMode || cookie.Value == cl.Token {
		t.Fatalf("sign-in: %d, cookie %+v", res.StatusCode, cookie)
	}
	res, page := get("/ui/c/lab")
	if res.StatusCode != 200 || !strings.Contains(res.Header.Get("Content-Security-Policy"), "default-src 'none'") {
		t.Fatalf("the page: %d, CSP %q", res.StatusCode, res.Header.Get("Content-Security-Policy"))
	}
	if strings.Contains(page, hostile) || !strings.Contains(page, "&lt;img src=x onerror=alert(1)&gt;") {
		t.Fatalf("the receiver's name is not escaped:\n%s", page)
	}
	for _, bad := range []string{"http://", "https://", "//cdn"} {
		if strings.Contains(page, `src="`+bad) || strings.Contains(page, `href="`+bad) {
			t.Fatalf("the page loads from elsewhere (%s)", bad)
		}
	}
	i := strings.Index(page, `name="csrf" value="`)
	csrf := page[i+len(`name="csrf" value="`):]
	csrf = csrf[:strings.IndexByte(csrf, '"')]

	add := url.Values{"kind": {"video"}}
	if res := post("/ui/c/lab/streams/add", add, ""); res.StatusCode != http.StatusForbidden {
		t.Fatalf("an action without the CSRF token: %d", res.StatusCode)
	}
	add.Set("csrf", csrf)
	if res := post("/ui/c/lab/streams/add", add, "http://evil.example"); res.StatusCode != http.StatusForbidden {
		t.Fatalf("an action from another origin: %d", res.StatusCode)
	}
	if res := post("/ui/c/lab/streams/add", add, cl.Base); res.StatusCode != http.StatusSeeOther {
		t.Fatalf("an action with its token: %d", res.StatusCode)
	}
	if err := cl.Do(ctx, "GET", "/v1/sessions/lab/sdp", nil, &raw); err != nil || !strings.Contains(string(raw), "m=video") {
		t.Fatalf("the stream the page added is not in the description (%v):\n%s", err, raw)
	}
	if res := post("/ui/c/lab/invite", url.Values{"csrf": {csrf}, "uri": {"not a uri\r\nVia: x"}}, ""); res.StatusCode != http.StatusBadRequest {
		t.Fatalf("a bad URI from the page: %d", res.StatusCode)
	}
	if res, body := get("/ui/static/app.js"); res.StatusCode != 200 || !strings.Contains(body, "EventSource") {
		t.Fatalf("app.js: %d", res.StatusCode)
	}
	if res, _ := get("/ui/static/templates.html"); res.StatusCode != http.StatusNotFound {
		t.Fatalf("the templates are served: %d", res.StatusCode)
	}
	// The page's event stream ends with its session.
	stream, err := hc.Get(cl.Base + "/ui/events")
	if err != nil || stream.StatusCode != 200 {
		t.Fatalf("the page's event stream: %v %v", err, stream)
	}
	ended := make(chan struct{})
	go func() { io.Copy(io.Discard, stream.Body); close(ended) }()
	if res := post("/ui/logout", url.Values{"csrf": {csrf}}, ""); res.StatusCode != http.StatusSeeOther {
		t.Fatalf("sign out: %d", res.StatusCode)
	}
	if res, _ := get("/ui/c/lab"); res.StatusCode != http.StatusSeeOther {
		t.Fatalf("after signing out, the page gives %d", res.StatusCode)
	}
	if err := cl.Do(ctx, "POST", "/v1/sessions/lab/reception", rep, nil); err != nil { // an event
		t.Fatal(err)
	}
	select {
	case <-ended:
	case <-time.After(10 * time.Second):
		t.Fatal("the event stream goes on after signing out")
	}
	stream.Body.Close()
}

// TestGridBound: a stream with more senders than the page shows keeps
// those most receivers hear, and counts the rest.
func TestGridBound(t *testing.T) {
	st := conference.StreamReception{Index: 0}
	for r := range 3 {
		rc := conference.ReceiverCell{Receiver: "r" + string(rune('a'+r)), Kind: "probe"}
		for i := range 40 {
			if r == 0 || i < 5 { // senders 0-4 are heard by all three
				rc.Senders = append(rc.Senders, reception.SenderReport{SSRC: uint32(i), Packets: 1})
			}
		}
		st.Receivers = append(st.Receivers, rc)
	}
	g := grids(conference.Reception{Streams: []conference.StreamReception{st}}, 0.02)[0]
	if len(g.Senders) != maxGridSenders || g.Others != 40-maxGridSenders || g.Senders[0].SSRC != 0 || g.Senders[4].SSRC != 4 {
		t.Fatalf("%d columns, %d others, first %+v", len(g.Senders), g.Others, g.Senders[:5])
	}
	for _, r := range g.Rows {
		if len(r.Cells) != maxGridSenders {
			t.Fatalf("row %s has %d cells", r.Receiver, len(r.Cells))
		}
	}
}
