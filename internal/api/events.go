package api

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"

	"mcc/conference"
)

// events streams the controller's events as Server-Sent Events, of one
// conference with ?session=NAME. Every 15 s a comment keeps the connection
// open and says how many events this reader lost, if it lost any.
func (s *Server) events(w http.ResponseWriter, r *http.Request) { s.eventsWhile(w, r, nil) }

// eventsWhile is events, ended as soon as valid (when not nil) says the
// reader may no longer read: a dashboard's session that signed out or
// expired.
func (s *Server) eventsWhile(w http.ResponseWriter, r *http.Request, valid func() bool) {
	fl, ok := w.(http.Flusher)
	if !ok {
		writeError(w, http.StatusInternalServerError, CodeInternal, "streaming is not supported here")
		return
	}
	only := r.URL.Query().Get("session")
	if only != "" {
		if _, err := s.Controller.Get(only); err != nil {
			s.fail(w, err)
			return
		}
	}
	ch, dropped, cancel := s.Controller.Subscribe()
	defer cancel()
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	fmt.Fprint(w, ": mcc events\n\n")
	fl.Flush()
	tick := time.NewTicker(15 * time.Second)
	defer tick.Stop()
	for {
		select {
		case <-r.Context().Done():
			return
		case <-tick.C:
			if valid != nil && !valid() {
				return
			}
			fmt.Fprintf(w, ": keep-alive, %d events dropped\n\n", dropped())
		case e := <-ch:
			if valid != nil && !valid() {
				return
			}
			if only != "" && e.Conference != only {
				continue
			}
			b, err := json.Marshal(e)
			if err != nil {
				continue
			}
			fmt.Fprintf(w, "event: %s\ndata: %s\n\n", e.Kind, b)
		}
		fl.Flush()
	}
}

// Events follows the daemon's event stream (of one session when session
// is set), calling f for each event until ctx ends, f returns an error, or
// the stream does.
func (c *Client) Events(ctx context.Context, session string, f func(conference.Event) error) error {
	path := "/v1/events"
	if session != "" {
		path += "?session=" + session
	}
	req, err := http.NewRequestWithContext(ctx, "GET", c.Base+path, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+c.Token)
	req.Header.Set("Accept", "text/event-stream")
	hc := *c.HTTP
	hc.Timeout = 0 // a stream lasts as long as it lasts
	res, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("cannot reach mcc serve at %s: %w", c.Base, err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		var e struct{ Error *Error }
		if json.NewDecoder(res.Body).Decode(&e) == nil && e.Error != nil {
			return e.Error
		}
		return fmt.Errorf("events: %s", res.Status)
	}
	sc := bufio.NewScanner(res.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		data, ok := strings.CutPrefix(sc.Text(), "data: ")
		if !ok {
			continue
		}
		var e conference.Event
		if err := json.Unmarshal([]byte(data), &e); err != nil {
			return fmt.Errorf("events: %w", err)
		}
		if err := f(e); err != nil {
			return err
		}
	}
	if ctx.Err() != nil {
		return nil
	}
	return sc.Err()
}
