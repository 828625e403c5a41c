package api

import (
	"bytes"
	"cmp"
	"context"
	"crypto/rand"
	"crypto/subtle"
	"embed"
	"encoding/base64"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"mcc/conference"
	"mcc/multicast"
	"mcc/multicast/reception"
	"mcc/multicast/sap"
	"mcc/sdp"
)

// The dashboard: pages served on the API's address under /ui/, rendered
// on the server with html/template (which escapes every value: display
// names and URIs come from the network), with one small script, served
// from the binary, that fetches the live part of a page again when the
// event stream says something changed. Nothing loads from elsewhere: the
// Content-Security-Policy allows this origin alone.
//
// The API token is typed in once and exchanged for a session: an
// HttpOnly, SameSite=Strict cookie that names it, and a CSRF token that
// every form carries and that the server checks against the session.

//go:embed web
var webFiles embed.FS

var pages = template.Must(template.New("").Funcs(template.FuncMap{}).ParseFS(webFiles, "web/templates.html"))

const (
	sessionCookie = "mcc_session"
	sessionLife   = 12 * time.Hour
	maxSessions   = 1024
)

type uiSession struct {
	csrf    string
	expires time.Time
}

type uiSessions struct {
	mu sync.Mutex // guards m
	m  map[string]uiSession
}

func randomToken() string {
	b := make([]byte, 32)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

func (u *uiSessions) create(now time.Time) (id string, s uiSession) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.m == nil {
		u.m = map[string]uiSession{}
	}
	for k, v := range u.m {
		if now.After(v.expires) {
			delete(u.m, k)
		}
	}
	if len(u.m) >= maxSessions { // the oldest goes
		var oldest string
		for k, v := range u.m {
			if oldest == "" || v.expires.Before(u.m[oldest].expires) {
				oldest = k
			}
		}
		delete(u.m, oldest)
	}
	id, s = randomToken(), uiSession{csrf: randomToken(), expires: now.Add(sessionLife)}
	u.m[id] = s
	return id, s
}

func (u *uiSessions) get(id string, now time.Time) (uiSession, bool) {
	u.mu.Lock()
	defer u.mu.Unlock()
	s, ok := u.m[id]
	if !ok || now.After(s.expires) {
		delete(u.m, id)
		return uiSession{}, false
	}
	return s, true
}

func (u *uiSessions) end(id string) {
	u.mu.Lock()
	delete(u.m, id)
	u.mu.Unlock()
}

// dashboard adds the /ui/ routes to mux.
func (s *Server) dashboard(mux *http.ServeMux) {
	static, _ := fs.Sub(webFiles, "web")
	files := http.FileServerFS(static)
	mux.Handle("GET /ui/static/{file}", secure(http.StripPrefix("/ui/static/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !slices.Contains([]string{"app.js", "style.css"}, r.URL.Path) {
			http.NotFound(w, r)
			return
		}
		files.ServeHTTP(w, r)
	}))))
	mux.Handle("GET /{$}", http.RedirectHandler("/ui/", http.StatusSeeOther))
	mux.Handle("GET /ui/login", secure(http.HandlerFunc(s.loginPage)))
	mux.Handle("POST /ui/login", secure(http.HandlerFunc(s.login)))
	mux.Handle("POST /ui/logout", secure(s.uiAction(func(w http.ResponseWriter, r *http.Request) {
		if c, err := r.Cookie(sessionCookie); err == nil {
			s.ui.end(c.Value)
		}
		http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: "", Path: "/ui/", MaxAge: -1, HttpOnly: true, SameSite: http.SameSiteStrictMode})
		http.Redirect(w, r, "/ui/login", http.StatusSeeOther)
	})))
	mux.Handle("GET /ui/{$}", secure(s.uiPage(s.overviewPage)))
	mux.Handle("GET /ui/live", secure(s.uiPage(s.overviewLive)))
	mux.Handle("GET /ui/events", secure(s.uiPage(func(w http.ResponseWriter, r *http.Request, _ uiSession) {
		c, _ := r.Cookie(sessionCookie)
		s.eventsWhile(w, r, func() bool { _, ok := s.ui.get(c.Value, time.Now()); return ok })
	})))
	mux.Handle("GET /ui/c/{name}", secure(s.uiPage(s.conferencePage)))
	mux.Handle("GET /ui/c/{name}/live", secure(s.uiPage(s.conferenceLive)))
	mux.Handle("POST /ui/c/{name}/invite", secure(s.uiAction(s.uiInvite)))
	mux.Handle("POST /ui/c/{name}/remove", secure(s.uiAction(s.uiRemove)))
	mux.Handle("POST /ui/c/{name}/streams/add", secure(s.uiAction(s.uiAddStream)))
	mux.Handle("POST /ui/c/{name}/streams/remove", secure(s.uiAction(s.uiRemoveStream)))
}

// secure sets the headers every dashboard answer carries: nothing but
// this origin may load into the page, frame it, or be a form's target.
func secure(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Referrer-Policy", "same-origin") // no-referrer would make forms send Origin: null
		h.Set("Cache-Control", "no-store")
		next.ServeHTTP(w, r)
	})
}

func (s *Server) session(r *http.Request) (uiSession, bool) {
	c, err := r.Cookie(sessionCookie)
	if err != nil {
		return uiSession{}, false
	}
	return s.ui.get(c.Value, time.Now())
}

// uiPage serves a page to a signed-in operator; others go to the sign-in
// page (a script's fetch gets 401).
func (s *Server) uiPage(f func(http.ResponseWriter, *http.Request, uiSession)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sess, ok := s.session(r)
		if !ok {
			if strings.HasSuffix(r.URL.Path, "/live") || r.URL.Path == "/ui/events" {
				http.Error(w, "sign in again", http.StatusUnauthorized)
				return
			}
			http.Redirect(w, r, "/ui/login", http.StatusSeeOther)
			return
		}
		f(w, r, sess)
	})
}

// uiAction serves a form's POST: it needs the session cookie, the
// session's CSRF token in the form, and, when the browser names it, this
// origin.
func (s *Server) uiAction(f http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sess, ok := s.session(r)
		if !ok {
			http.Error(w, "sign in first", http.StatusForbidden)
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, 16<<10)
		if err := r.ParseForm(); err != nil {
			http.Error(w, "bad form", http.StatusBadRequest)
			return
		}
		if !sameOrigin(r) || subtle.ConstantTimeCompare([]byte(r.PostForm.Get("csrf")), []byte(sess.csrf)) != 1 {
			http.Error(w, "the form's CSRF token does not match this session: reload the page", http.StatusForbidden)
			return
		}
		f(w, r)
	})
}

// sameOrigin reports whether the request's Origin, when there is one, is
// the host it was sent to.
func sameOrigin(r *http.Request) bool {
	o := r.Header.Get("Origin")
	if o == "" {
		return true
	}
	u, err := url.Parse(o)
	return err == nil && u.Host == r.Host
}

func (s *Server) render(w http.ResponseWriter, status int, name string, data any) {
	var b bytes.Buffer
	if err := pages.ExecuteTemplate(&b, name, data); err != nil {
		s.log().Error("dashboard page", "page", name, "err", err)
		http.Error(w, "the page could not be made", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	w.Write(b.Bytes())
}

func (s *Server) loginPage(w http.ResponseWriter, r *http.Request) {
	if _, ok := s.session(r); ok {
		http.Redirect(w, r, "/ui/", http.StatusSeeOther)
		return
	}
	s.render(w, http.StatusOK, "login", struct{ Error string }{})
}

func (s *Server) login(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 4<<10)
	if err := r.ParseForm(); err != nil || !sameOrigin(r) {
		s.render(w, http.StatusBadRequest, "login", struct{ Error string }{"That sign-in could not be read."})
		return
	}
	tok := strings.TrimSpace(r.PostForm.Get("token"))
	if subtle.ConstantTimeCompare([]byte(tok), []byte(s.Token)) != 1 {
		time.Sleep(200 * time.Millisecond) // a guess costs something
		s.render(w, http.StatusUnauthorized, "login", struct{ Error string }{"That is not this daemon's token."})
		return
	}
	id, _ := s.ui.create(time.Now())
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: id, Path: "/ui/", MaxAge: int(sessionLife.Seconds()),
		HttpOnly: true, Secure: r.TLS != nil, SameSite: http.SameSiteStrictMode})
	http.Redirect(w, r, "/ui/", http.StatusSeeOther)
}

type confRow struct {
	Name, URI, Schedule  string
	Version              uint64
	Joined, Participants int
}

type poolRow struct {
	Name, Prefix string
	TTL          uint8
	Leased, Size uint64
}

type overviewData struct {
	CSRF         string
	Conferences  []confRow
	Alerts       []conference.Alert
	Pools        []poolRow
	Leases       []multicast.Lease
	HasDirectory bool
	Directory    []sap.Heard
}

func (s *Server) overview(sess uiSession) overviewData {
	d := overviewData{CSRF: sess.csrf, Alerts: s.Controller.Alerts(), Leases: s.Allocator.Leases(), HasDirectory: s.Directory != nil}
	for _, in := range s.Controller.List() {
		row := confRow{Name: in.Name, URI: in.URI, Version: in.Version, Participants: len(in.Participants)}
		for _, p := range in.Participants {
			if p.State == conference.Joined {
				row.Joined++
			}
		}
		if sc := in.Schedule; sc != nil {
			switch {
			case sc.OnAir != nil:
				row.Schedule = "on air until " + sc.OnAir.End.Local().Format("Mon 15:04")
			case sc.Next != nil:
				row.Schedule = "next " + sc.Next.Start.Local().Format("Mon 2 Jan 15:04")
			default:
				row.Schedule = "over"
			}
		}
		d.Conferences = append(d.Conferences, row)
	}
	for _, p := range s.Allocator.Pools() {
		leased, size, _ := s.Allocator.Usage(p.Name)
		d.Pools = append(d.Pools, poolRow{Name: p.Name, Prefix: p.Prefix.String(), TTL: p.TTL, Leased: leased, Size: size})
	}
	if s.Directory != nil {
		d.Directory = s.Directory.List()
	}
	return d
}

func (s *Server) overviewPage(w http.ResponseWriter, r *http.Request, sess uiSession) {
	s.render(w, http.StatusOK, "overview", s.overview(sess))
}

func (s *Server) overviewLive(w http.ResponseWriter, r *http.Request, sess uiSession) {
	s.render(w, http.StatusOK, "overview-live", s.overview(sess))
}

type streamRow struct {
	Index                    int
	Kind, Direction, Formats string
	Group                    netip.Addr
	Port, TTL                int
	Sources                  []netip.Addr
}

// gridSender is a column of a stream's matrix.
type gridSender struct {
	SSRC   uint32
	Label  string
	Source string
}

type gridCell struct {
	Class, Text              string
	Heard                    bool
	Loss, Jitter, Rate, Last string
}

type gridRow struct {
	Receiver, Kind, Age string
	Participants        []string
	Cells               []gridCell
}

type grid struct {
	Index   int
	Group   netip.Addr
	Port    int
	Senders []gridSender
	Rows    []gridRow
	// Others counts the senders left out of the columns.
	Others int
}

// maxGridSenders bounds a matrix's columns: the senders most receivers
// hear (RTCP senders first) are shown, and the others counted. Without
// it, forged RTCP could make a page of 256 receivers × 16,384 senders.
const maxGridSenders = 32

type conferenceData struct {
	CSRF, Flash, Error string
	Info               conference.Info
	Streams            []streamRow
	Matrix             conference.Reception
	Grid               []grid
}

func (s *Server) conferenceData(name string, sess uiSession) (conferenceData, error) {
	in, err := s.Controller.Get(name)
	if err != nil {
		return conferenceData{}, err
	}
	d := conferenceData{CSRF: sess.csrf, Info: in}
	if desc, err := s.Controller.Session(name); err == nil {
		for i, m := range desc.Media {
			cn := desc.EffectiveConnection(m)
			if m.Port == 0 || cn == nil {
				continue
			}
			row := streamRow{Index: i, Kind: m.Kind, Group: cn.Addr, Port: int(m.Port), TTL: int(cn.TTL),
				Direction: string(desc.EffectiveDirection(m)), Formats: formats(m)}
			row.Sources, _ = desc.SourcesFor(m, cn.Addr)
			d.Streams = append(d.Streams, row)
		}
	}
	if d.Matrix, err = s.Controller.Reception(name); err == nil {
		d.Grid = grids(d.Matrix, s.Controller.ReceptionLossAlert())
	}
	return d, nil
}

func formats(m *sdp.Media) string {
	var out []string
	for _, f := range m.Formats {
		if r, ok := m.RTPMap(f); ok {
			out = append(out, fmt.Sprintf("%s/%d", r.Encoding, r.ClockRate))
		} else {
			out = append(out, f)
		}
	}
	return strings.Join(out, " ")
}

// grids lays each stream's matrix out as receivers × senders: the
// senders any receiver heard or whose RTCP sender reports mcc heard.
func grids(m conference.Reception, lossAlert float64) []grid {
	var out []grid
	for _, st := range m.Streams {
		g := grid{Index: st.Index, Group: st.Group, Port: st.Port}
		col := map[uint32]int{}
		score := map[uint32]int{}
		// Receivers decide: a sender more of them hear comes first.
		// A probe (authenticated) weighs most, an RTCP receiver less, an
		// RTCP sender report least.
		for _, x := range st.Senders {
			score[x.SSRC]++
		}
		for _, rc := range st.Receivers {
			w := 4
			if rc.Kind == conference.ReceiverRTCP {
				w = 2
			}
			for _, x := range rc.Senders {
				score[x.SSRC] += w
			}
		}
		ssrcs := make([]uint32, 0, len(score))
		for k := range score {
			ssrcs = append(ssrcs, k)
		}
		slices.SortFunc(ssrcs, func(a, b uint32) int { return cmp.Or(cmp.Compare(score[b], score[a]), cmp.Compare(a, b)) })
		if len(ssrcs) > maxGridSenders {
			g.Others = len(ssrcs) - maxGridSenders
			ssrcs = ssrcs[:maxGridSenders]
		}
		source := map[uint32]netip.Addr{}
		for _, x := range st.Senders {
			source[x.SSRC] = x.Source
		}
		for _, rc := range st.Receivers {
			for _, x := range rc.Senders {
				if !source[x.SSRC].IsValid() {
					source[x.SSRC] = x.Source
				}
			}
		}
		for _, k := range ssrcs {
			col[k] = len(g.Senders)
			x := gridSender{SSRC: k, Label: fmt.Sprintf("%08x", k)}
			if src := source[k]; src.IsValid() {
				x.Source = src.String()
			}
			g.Senders = append(g.Senders, x)
		}
		if len(g.Senders) == 0 && len(st.Receivers) > 0 {
			g.Senders = []gridSender{{Label: "(none heard)"}}
		}
		for _, rc := range st.Receivers {
			row := gridRow{Receiver: rc.Receiver, Kind: rc.Kind, Participants: rc.Participants,
				Age: "report " + (time.Duration(rc.ReportAgeMS) * time.Millisecond).Round(time.Second).String() + " ago"}
			row.Cells = make([]gridCell, len(g.Senders))
			for i := range row.Cells {
				switch {
				case rc.Error != "":
					row.Cells[i] = gridCell{Class: "silent", Text: "not joined: " + rc.Error}
				case rc.Silent:
					row.Cells[i] = gridCell{Class: "silent", Text: "silent"}
				default:
					row.Cells[i] = gridCell{Class: "none", Text: "—"}
				}
			}
			for _, x := range rc.Senders {
				c := gridCell{Heard: true, Class: "ok",
					Loss:   strconv.FormatFloat(100*x.IntervalLoss, 'f', 1, 64) + "%",
					Jitter: strconv.FormatFloat(x.JitterMS, 'f', 1, 64) + " ms",
					Rate:   reception.RateText(x.RateBPS),
					Last:   (time.Duration(x.LastAgeMS) * time.Millisecond).Round(100*time.Millisecond).String() + " ago"}
				switch {
				case rc.Silent:
					c.Class = "silent"
				case x.IntervalLoss >= lossAlert:
					c.Class = "bad"
				case x.IntervalLoss > 0:
					c.Class = "warn"
				}
				if i, ok := col[x.SSRC]; ok {
					row.Cells[i] = c
				}
			}
			g.Rows = append(g.Rows, row)
		}
		out = append(out, g)
	}
	return out
}

func (s *Server) conferencePage(w http.ResponseWriter, r *http.Request, sess uiSession) {
	s.conferenceReply(w, r, sess, http.StatusOK, "")
}

var flashes = map[string]string{
	"invited":        "Invited: the participant appears below as the invitation goes.",
	"removed":        "Removed: mcc sends BYE.",
	"stream-added":   "Stream added: everyone gets a re-INVITE.",
	"stream-removed": "Stream removed: everyone gets a re-INVITE.",
}

func (s *Server) conferenceReply(w http.ResponseWriter, r *http.Request, sess uiSession, status int, problem string) {
	d, err := s.conferenceData(r.PathValue("name"), sess)
	if err != nil {
		http.Error(w, "no such conference", http.StatusNotFound)
		return
	}
	d.Flash, d.Error = flashes[r.URL.Query().Get("did")], problem
	s.render(w, status, "conference", d)
}

func (s *Server) conferenceLive(w http.ResponseWriter, r *http.Request, sess uiSession) {
	d, err := s.conferenceData(r.PathValue("name"), sess)
	if err != nil {
		http.Error(w, "no such conference", http.StatusNotFound)
		return
	}
	s.render(w, http.StatusOK, "conference-live", d)
}

// done answers a form that worked: back to the conference's page (a
// reload does not send the form again).
func done(w http.ResponseWriter, r *http.Request, what string) {
	http.Redirect(w, r, "/ui/c/"+url.PathEscape(r.PathValue("name"))+"?did="+what, http.StatusSeeOther)
}

func (s *Server) uiFail(w http.ResponseWriter, r *http.Request, err error) {
	sess, _ := s.session(r)
	status, _ := classify(err)
	s.conferenceReply(w, r, sess, status, err.Error())
}

func (s *Server) uiInvite(w http.ResponseWriter, r *http.Request) {
	uri := strings.TrimSpace(r.PostForm.Get("uri"))
	if err := checkLine("uri", uri, maxURI); err != nil {
		s.uiFail(w, r, err)
		return
	}
	role, err := conference.ParseRole(r.PostForm.Get("role"))
	if err != nil {
		s.uiFail(w, r, badf("role %q: want speaker or listener", r.PostForm.Get("role")))
		return
	}
	if _, err := s.Controller.InviteAs(r.PathValue("name"), role, uri); err != nil {
		s.uiFail(w, r, err)
		return
	}
	done(w, r, "invited")
}

func (s *Server) uiRemove(w http.ResponseWriter, r *http.Request) {
	if err := s.Controller.Remove(r.PathValue("name"), r.PostForm.Get("id")); err != nil {
		s.uiFail(w, r, err)
		return
	}
	done(w, r, "removed")
}

// noWait is the context a change from the dashboard runs under: it is
// saved and goes on, and the page follows it live.
func noWait() context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return ctx
}

func (s *Server) uiAddStream(w http.ResponseWriter, r *http.Request) {
	ms, err := sdp.ParseMediaSpec(strings.TrimSpace(r.PostForm.Get("kind")))
	if err != nil {
		s.uiFail(w, r, badf("%v", err))
		return
	}
	if _, err := s.Controller.AddStream(noWait(), r.PathValue("name"), ms); err != nil {
		s.uiFail(w, r, err)
		return
	}
	done(w, r, "stream-added")
}

func (s *Server) uiRemoveStream(w http.ResponseWriter, r *http.Request) {
	i, err := strconv.Atoi(r.PostForm.Get("index"))
	if err != nil || i < 0 {
		s.uiFail(w, r, badf("stream %q: want its index", r.PostForm.Get("index")))
		return
	}
	if _, err := s.Controller.RemoveStream(noWait(), r.PathValue("name"), i); err != nil {
		s.uiFail(w, r, err)
		return
	}
	done(w, r, "stream-removed")
}
