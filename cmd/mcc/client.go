package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"mcc/conference"
	"mcc/internal/api"
	"mcc/multicast/sap"
	"mcc/sdp"
)

// clientFlags are the flags of every command that talks to mcc serve.
type clientFlags struct {
	commonFlags
	addr, token string
	// check, when set, checks the flags before the daemon is looked for:
	// a bad flag is a usage error even with no daemon running.
	check func() error
}

func (c *clientFlags) register(fs *flag.FlagSet) {
	c.commonFlags.register(fs, true)
	fs.StringVar(&c.addr, "api", "", "control API address (default: MCC_API, else the data directory's api.addr)")
	fs.StringVar(&c.token, "token", "", "API token (default: MCC_TOKEN, else the data directory's token)")
}

func (c *clientFlags) parse(fs *flag.FlagSet, args []string, min, max int, what string) ([]string, *api.Client, error) {
	pos, dir, err := c.commonFlags.parse(fs, args, min, max, what)
	if err != nil {
		return nil, nil, err
	}
	if c.check != nil {
		if err := c.check(); err != nil {
			return nil, nil, err
		}
	}
	cl, err := api.Discover(c.addr, c.token, dir)
	return pos, cl, err
}

func apiCtx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), 90*time.Second)
}

func cmdSession(args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return usagef("session needs a sub-command: create, import, list, show, sdp or delete")
	}
	sub, args := args[0], args[1:]
	fs := newFlags("session "+sub, stderr)
	var cf clientFlags
	cf.register(fs)
	ctx, cancel := apiCtx()
	defer cancel()
	switch sub {
	case "create":
		family := fs.String("family", "4", "address family: 4 or 6")
		scope := fs.String("scope", "local", "scope of the groups (see mcc help)")
		pool := fs.String("pool", "", "pool name instead of --family and --scope")
		media := fs.String("media", "audio", "comma-separated streams: audio, video, text, each optionally with its format, KIND:ENCODING/RATE[/CHANNELS] (audio:L16/48000/2)")
		typ := fs.String("type", "broadcast", "session type: broadcast, meeting, moderated or test")
		info := fs.String("info", "", "session information (i=)")
		sources := fs.String("source", "", "comma-separated sender addresses (SSM)")
		access := fs.String("access", "anyone", "who may dial in: anyone, or allow (with --allow)")
		allow := fs.String("allow", "", "comma-separated URIs (user@host) or domains allowed to dial in (matched against From, which the caller writes)")
		sapProfiles := fs.String("sap", "", "how mcc announces the session over SAP, comma-separated profiles: "+strings.Join(sap.ProfileNames(), ", ")+" (default: the daemon's --sap-profile)")
		allowFrom := fs.String("allow-from", "", "comma-separated addresses or prefixes (192.0.2.0/24) dial-ins must come from, whatever their From")
		moderators := fs.String("moderators", "", "comma-separated URIs (user@host), domains or digest users who may REFER to the conference to bring someone in or have them removed")
		start := fs.String("start", "", "when the session starts: RFC 3339 (2026-12-07T10:00:00+01:00) or a local time in --tz (2026-12-07 10:00); default: now, for good")
		stop := fs.String("stop", "", "when it stops, as --start (default: never; with --repeat, the series goes on)")
		repeat := fs.String("repeat", "", "how it repeats from --start: weekly DURATION (weekly 1h30m), daily DURATION, or an r= line's fields (7d 1h 0 25h)")
		tz := fs.String("tz", localZone(), "the IANA time zone of local times in --start and --stop, which a series keeps through daylight saving")
		invite := fs.String("invite", "", "comma-separated URIs mcc dials at each start (at once without a schedule), with no role")
		speakers := fs.String("speaker", "", "comma-separated URIs dialed at each start as speakers (sendrecv)")
		listeners := fs.String("listener", "", "comma-separated URIs dialed at each start as listeners (recvonly)")
		pos, cl, err := cf.parse(fs, args, 1, 1, "the session's name")
		if err != nil {
			return err
		}
		req := api.SessionRequest{Name: pos[0], Info: *info, Family: *family, Scope: *scope, Pool: *pool, Type: *typ,
			Media: splitList(*media), Sources: splitList(*sources), SAP: splitList(*sapProfiles)}
		if *pool != "" {
			req.Family, req.Scope = "", ""
		}
		if *access != "anyone" || *allowFrom != "" || *moderators != "" {
			req.Access = &api.AccessRequest{Mode: *access, Allow: splitList(*allow), Sources: splitList(*allowFrom), Moderators: splitList(*moderators)}
		}
		req.Start, req.Stop, req.Repeat = *start, *stop, *repeat
		if *start != "" || *stop != "" || *repeat != "" {
			req.Timezone = *tz
		}
		for _, l := range []struct{ uris, role string }{{*speakers, "speaker"}, {*listeners, "listener"}, {*invite, ""}} {
			for _, u := range splitList(l.uris) {
				req.Invite = append(req.Invite, api.InviteeRequest{URI: u, Role: l.role})
			}
		}
		var in conference.Info
		if err := cl.Do(ctx, "POST", "/v1/sessions", req, &in); err != nil {
			return err
		}
		return printInfo(stdout, cf.output, in)
	case "import":
		name := fs.String("name", "", "the session's name (default: the file's name)")
		heard := fs.String("heard", "", "import a session heard over SAP by its ID (see mcc directory) instead of a file; the conference follows the announcer's changes")
		onEnd := fs.String("on-end", "end", "with --heard, when the announcer deletes the session or stops announcing it: end (BYE to everyone) or keep")
		cf.check = func() error {
			onEndSet := false
			fs.Visit(func(f *flag.Flag) { onEndSet = onEndSet || f.Name == "on-end" })
			if onEndSet && *heard == "" {
				return usagef("--on-end is for a session heard over SAP: give --heard ID")
			}
			if *onEnd != "end" && *onEnd != "keep" {
				return usagef("--on-end %q: want end or keep", *onEnd)
			}
			return nil
		}
		pos, cl, err := cf.parse(fs, args, 0, 1, "one SDP file, or - for standard input, or --heard ID")
		if err != nil {
			return err
		}
		if *heard != "" && len(pos) > 0 {
			return usagef("give an SDP file or --heard ID, not both")
		}
		if *heard != "" {
			if *name == "" {
				return usagef("--heard needs --name for the conference")
			}
			var in api.Imported
			if err := cl.Do(ctx, "POST", "/v1/sessions", api.SessionRequest{Name: *name, Heard: *heard, OnSAPEnd: *onEnd}, &in); err != nil {
				return err
			}
			printWarnings(stderr, in.Warnings)
			return printInfo(stdout, cf.output, in.Info)
		}
		if len(pos) == 0 {
			return usagef("session import needs an SDP file, or - for standard input, or --heard ID")
		}
		var b []byte
		if pos[0] == "-" {
			b, err = io.ReadAll(io.LimitReader(stdin, 1<<16))
		} else {
			b, err = os.ReadFile(pos[0])
		}
		if err != nil {
			return err
		}
		if *name == "" {
			*name = strings.TrimSuffix(filepath.Base(pos[0]), filepath.Ext(pos[0]))
		}
		var in api.Imported
		if err := cl.Do(ctx, "POST", "/v1/sessions?name="+url.QueryEscape(*name), b, &in); err != nil {
			return err
		}
		printWarnings(stderr, in.Warnings)
		return printInfo(stdout, cf.output, in.Info)
	case "list":
		_, cl, err := cf.parse(fs, args, 0, 0, "")
		if err != nil {
			return err
		}
		var list []conference.Info
		if err := cl.Do(ctx, "GET", "/v1/sessions", nil, &list); err != nil {
			return err
		}
		if cf.output == "json" {
			return printJSON(stdout, list)
		}
		rows := [][]string{{"NAME", "URI", "VERSION", "PARTICIPANTS", "EXTERNAL"}}
		for _, in := range list {
			rows = append(rows, []string{in.Name, in.URI, strconv.FormatUint(in.Version, 10), strconv.Itoa(len(in.Participants)), strconv.FormatBool(in.External)})
		}
		table(stdout, rows)
		return nil
	case "show", "sdp", "delete":
		pos, cl, err := cf.parse(fs, args, 1, 1, "the session's name")
		if err != nil {
			return err
		}
		path := "/v1/sessions/" + url.PathEscape(pos[0])
		switch sub {
		case "show":
			var in conference.Info
			if err := cl.Do(ctx, "GET", path, nil, &in); err != nil {
				return err
			}
			return printInfo(stdout, cf.output, in)
		case "sdp":
			var b []byte
			if err := cl.Do(ctx, "GET", path+"/sdp", nil, &b); err != nil {
				return err
			}
			_, err = stdout.Write(b)
			return err
		default:
			if err := cl.Do(ctx, "DELETE", path, nil, nil); err != nil {
				return err
			}
			fmt.Fprintf(stdout, "deleted %s\n", pos[0])
			return nil
		}
	}
	return usagef("unknown session sub-command %q: want create, import, list, show, sdp or delete", sub)
}

func splitList(s string) []string {
	var out []string
	for _, x := range strings.Split(s, ",") {
		if x = strings.TrimSpace(x); x != "" {
			out = append(out, x)
		}
	}
	return out
}

func printInfo(w io.Writer, format string, in conference.Info) error {
	if format == "json" {
		return printJSON(w, in)
	}
	fmt.Fprintf(w, "%s  %s  version %d\n", in.Name, in.URI, in.Version)
	if s := in.Schedule; s != nil {
		switch {
		case s.OnAir != nil:
			fmt.Fprintf(w, "on air: %s\n", interval(*s.OnAir))
		case s.Next != nil:
			fmt.Fprintf(w, "next: %s (resting: no lease, no announcement)\n", interval(*s.Next))
		default:
			fmt.Fprintln(w, "the schedule is over")
		}
		for _, in := range s.Invitees {
			role := string(in.Role)
			if role == "" {
				role = "invitee"
			}
			fmt.Fprintf(w, "  %s: %s\n", role, in.URI)
		}
	}
	if len(in.Participants) > 0 {
		printParticipants(w, in.Participants)
	}
	return nil
}

// interval shows a scheduled interval in the local time zone.
func interval(iv sdp.Interval) string {
	if iv.Start.IsZero() { // t=0 STOP: on from its creation
		return "now to " + iv.End.Local().Format("Mon 2006-01-02 15:04 MST")
	}
	if iv.End.IsZero() {
		return iv.Start.Local().Format("Mon 2006-01-02 15:04 MST") + " onwards"
	}
	return iv.Start.Local().Format("Mon 2006-01-02 15:04") + " to " + iv.End.Local().Format("15:04 MST")
}

// localZone is the IANA name of this host's time zone: TZ, else what
// /etc/localtime links to, else UTC.
func localZone() string {
	if tz := strings.TrimPrefix(os.Getenv("TZ"), ":"); tz != "" && !strings.HasPrefix(tz, "/") {
		return tz
	}
	if l, err := os.Readlink("/etc/localtime"); err == nil {
		if _, name, ok := strings.Cut(l, "zoneinfo/"); ok {
			return name
		}
	}
	return "UTC"
}

func printParticipants(w io.Writer, ps []conference.Participant) {
	rows := [][]string{{"ID", "URI", "STATE", "ROLE", "VERSION", "STREAMS", "STATUS", "REASON"}}
	for _, p := range ps {
		status := ""
		if p.Status != 0 {
			status = strconv.Itoa(p.Status)
		}
		state := p.State.String()
		if p.Hold && p.State == conference.Joined {
			state += " (on hold)"
		}
		if p.Behind {
			state += " (behind)"
		}
		version := ""
		if p.Acked != 0 {
			version = strconv.FormatUint(p.Acked, 10)
		}
		role := string(p.Role)
		if p.By != "" {
			role += " (referred by " + p.By + ")"
			role = strings.TrimPrefix(role, " ")
		}
		rows = append(rows, []string{p.ID, p.URI, state, role, version, strings.Join(p.Streams, ","), status, p.Reason})
	}
	table(w, rows)
}

// inviteWait is how long mcc invite waits for the outcome by default: an
// invitation rings for at most mcc serve's --ring-timeout (30 s), then
// the CANCEL and its answer take a few seconds more.
const inviteWait = 45 * time.Second

// cmdInvite invites URIs into a session and, unless --wait is 0, waits
// until every one of them has joined, declined or failed. The exit status
// is 0 only when every participant it was asked to invite joined (or,
// with --wait 0, when the invitations were sent); 1 when one declined,
// failed, or was still being invited when the wait ran out.
func cmdInvite(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("invite", stderr)
	var cf clientFlags
	cf.register(fs)
	wait := fs.Duration("wait", inviteWait, "wait up to this long for every invitation's outcome (joined, declined or failed); 0: return once they are sent")
	role := fs.String("role", "", "the participants' role: speaker (offered sendrecv) or listener (recvonly); none takes the session's directions")
	cf.check = func() error {
		if *wait < 0 {
			return usagef("--wait %v: want a duration, 0 to return at once", *wait)
		}
		if *role != "" && *role != "speaker" && *role != "listener" {
			return usagef("--role %q: want speaker or listener", *role)
		}
		return nil
	}
	pos, cl, err := cf.parse(fs, args, 2, -1, "the session and one or more SIP URIs")
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), *wait+30*time.Second)
	defer cancel()
	path := "/v1/sessions/" + url.PathEscape(pos[0]) + "/participants"
	var ps []conference.Participant
	if err := cl.Do(ctx, "POST", path, api.InviteRequest{URIs: pos[1:], Role: *role}, &ps); err != nil {
		return err
	}
	if *wait > 0 {
		if ps, err = awaitOutcomes(ctx, cl, path, ps, time.Now().Add(*wait)); err != nil {
			return err
		}
	}
	if cf.output == "json" {
		if err := printJSON(stdout, ps); err != nil {
			return err
		}
	} else {
		printParticipants(stdout, ps)
	}
	if *wait == 0 {
		return nil
	}
	var notJoined []string
	for _, p := range ps {
		if p.State != conference.Joined {
			notJoined = append(notJoined, p.URI+" "+p.State.String())
		}
	}
	if len(notJoined) > 0 {
		fmt.Fprintf(stderr, "mcc: %d of %d did not join: %s\n", len(notJoined), len(ps), strings.Join(notJoined, ", "))
		return &exitError{1}
	}
	return nil
}

// awaitOutcomes polls the participants of path until each of invited is
// in a final state or deadline passes, and returns them as they are then.
// One that is no longer listed (a conference lists only its newest ended
// participants) has ended, and is shown as failed with that reason.
func awaitOutcomes(ctx context.Context, cl *api.Client, path string, invited []conference.Participant, deadline time.Time) ([]conference.Participant, error) {
	out := append([]conference.Participant(nil), invited...)
	for {
		var all []conference.Participant
		if err := cl.Do(ctx, "GET", path, nil, &all); err != nil {
			return nil, err
		}
		byID := map[string]conference.Participant{}
		for _, p := range all {
			byID[p.ID] = p
		}
		pending := false
		for i, p := range out {
			now, ok := byID[p.ID]
			switch {
			case ok:
				out[i] = now
			case p.State == conference.Invited || p.State == conference.Ringing:
				out[i].State, out[i].Reason = conference.Failed, "ended, no longer listed"
			}
			pending = pending || out[i].State == conference.Invited || out[i].State == conference.Ringing
		}
		if !pending || time.Now().After(deadline) {
			return out, nil
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func cmdParticipants(args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 && args[0] == "role" {
		// Give the floor, or take it back: the participant alone is
		// re-INVITEd with its own offer.
		fs := newFlags("participants role", stderr)
		var cf clientFlags
		cf.register(fs)
		pos, cl, err := cf.parse(fs, args[1:], 3, 3, "the session, the participant's ID (see mcc participants SESSION) and speaker, listener or none")
		if err != nil {
			return err
		}
		if r := pos[2]; r != "speaker" && r != "listener" && r != "none" {
			return usagef("role %q: want speaker, listener or none", r)
		}
		ctx, cancel := apiCtx()
		defer cancel()
		var p conference.Participant
		if err := cl.Do(ctx, "PATCH", "/v1/sessions/"+url.PathEscape(pos[0])+"/participants/"+url.PathEscape(pos[1]), api.ParticipantRequest{Role: &pos[2]}, &p); err != nil {
			return err
		}
		if cf.output == "json" {
			return printJSON(stdout, p)
		}
		printParticipants(stdout, []conference.Participant{p})
		return nil
	}
	if len(args) > 0 && args[0] == "remove" {
		fs := newFlags("participants remove", stderr)
		var cf clientFlags
		cf.register(fs)
		pos, cl, err := cf.parse(fs, args[1:], 2, 2, "the session and the participant's ID (see mcc participants SESSION)")
		if err != nil {
			return err
		}
		ctx, cancel := apiCtx()
		defer cancel()
		if err := cl.Do(ctx, "DELETE", "/v1/sessions/"+url.PathEscape(pos[0])+"/participants/"+url.PathEscape(pos[1]), nil, nil); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "removed %s\n", pos[1])
		return nil
	}
	fs := newFlags("participants", stderr)
	var cf clientFlags
	cf.register(fs)
	pos, cl, err := cf.parse(fs, args, 1, 1, "the session's name")
	if err != nil {
		return err
	}
	ctx, cancel := apiCtx()
	defer cancel()
	var ps []conference.Participant
	if err := cl.Do(ctx, "GET", "/v1/sessions/"+url.PathEscape(pos[0])+"/participants", nil, &ps); err != nil {
		return err
	}
	if cf.output == "json" {
		return printJSON(stdout, ps)
	}
	printParticipants(stdout, ps)
	return nil
}

// mediaWait is how long mcc media waits for every participant by
// default: a re-INVITE that gets no answer ends its dialog after 64·T1
// (32 s), so by then each participant has answered, failed or been
// given up on for now.
const mediaWait = 40 * time.Second

// cmdMedia changes a session's streams for everyone. The change is saved
// and goes on in mcc serve whatever happens here; --wait says how long to
// wait for the participants' answers. The exit status is 0 when every
// participant that is in the session has the change (or, with --wait 0,
// once it is applied); 1 when one is behind, or the wait ran out first.
func cmdMedia(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return usagef("media needs a sub-command: add, remove or direction")
	}
	sub, args := args[0], args[1:]
	fs := newFlags("media "+sub, stderr)
	var cf clientFlags
	cf.register(fs)
	dir := fs.String("direction", "", "the stream's direction: sendrecv, sendonly, recvonly or inactive")
	wait := fs.Duration("wait", mediaWait, "wait up to this long for every participant's answer; 0: return once the change is applied")
	cf.check = func() error {
		if *wait < 0 || *wait > 10*time.Minute {
			return usagef("--wait %v: want a duration up to 10m, 0 to return once the change is applied", *wait)
		}
		return nil
	}
	var pos []string
	var cl *api.Client
	var err error
	switch sub {
	case "add":
		pos, cl, err = cf.parse(fs, args, 2, 2, "the session and a kind (audio, video, text)")
	case "remove":
		pos, cl, err = cf.parse(fs, args, 2, 2, "the session and the stream's index")
	case "direction":
		pos, cl, err = cf.parse(fs, args, 3, 3, "the session, the stream's index and a direction")
	default:
		return usagef("unknown media sub-command %q: want add, remove or direction", sub)
	}
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), *wait+30*time.Second)
	defer cancel()
	cl.HTTP.Timeout = 0 // ctx bounds the request, past the wait
	q := ""
	if *wait > 0 {
		q = "?wait=" + url.QueryEscape(wait.String())
	}
	path := "/v1/sessions/" + url.PathEscape(pos[0]) + "/streams"
	var ch conference.Change
	switch sub {
	case "add":
		err = cl.Do(ctx, "POST", path+q, api.StreamRequest{Kind: pos[1], Direction: *dir}, &ch)
	case "remove", "direction":
		if _, err := strconv.Atoi(pos[1]); err != nil {
			return usagef("stream %q: want its index, from 0", pos[1])
		}
		path += "/" + pos[1] + q
		if sub == "remove" {
			err = cl.Do(ctx, "DELETE", path, nil, &ch)
		} else {
			err = cl.Do(ctx, "PATCH", path, api.StreamRequest{Direction: pos[2]}, &ch)
		}
	}
	if err != nil {
		return err
	}
	if cf.output == "json" {
		if err := printJSON(stdout, ch); err != nil {
			return err
		}
	} else {
		fmt.Fprintf(stdout, "stream %d, version %d\n", ch.Stream, ch.Version)
		printParticipants(stdout, ch.Results)
	}
	if *wait == 0 {
		return nil
	}
	var behind []string
	for _, p := range ch.Results {
		switch {
		case p.State == conference.Joined && p.Acked < ch.Version:
			behind = append(behind, p.URI+" behind")
		case p.State == conference.Invited || p.State == conference.Ringing:
			behind = append(behind, p.URI+" "+p.State.String())
		}
	}
	if len(behind) > 0 {
		how := "the change is applied; it goes on for"
		if ch.Done {
			how = "the change is applied, but refused by"
		}
		fmt.Fprintf(stderr, "mcc: %s %d participant(s) (mcc participants %s follows them): %s\n", how, len(behind), pos[0], strings.Join(behind, ", "))
		return &exitError{1}
	}
	return nil
}

func cmdDirectory(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("directory", stderr)
	var cf clientFlags
	cf.register(fs)
	_, cl, err := cf.parse(fs, args, 0, 0, "")
	if err != nil {
		return err
	}
	ctx, cancel := apiCtx()
	defer cancel()
	var list []sap.Heard
	if err := cl.Do(ctx, "GET", "/v1/directory", nil, &list); err != nil {
		return err
	}
	if cf.output == "json" {
		if list == nil {
			list = []sap.Heard{}
		}
		return printJSON(stdout, list)
	}
	rows := [][]string{{"NAME", "GROUPS", "SOURCE", "LAST HEARD", "ID"}}
	for _, h := range list {
		var gs []string
		for i, g := range h.Groups {
			gs = append(gs, fmt.Sprintf("%s:%d", hostPortless(g.String()), h.Ports[i]))
		}
		rows = append(rows, []string{h.Name, strings.Join(gs, ","), h.Source.String(), h.Last.Local().Format(time.TimeOnly), h.ID})
	}
	table(stdout, rows)
	return nil
}

func hostPortless(s string) string {
	if strings.Contains(s, ":") {
		return "[" + s + "]"
	}
	return s
}

func cmdWatch(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("watch", stderr)
	var cf clientFlags
	cf.register(fs)
	pos, cl, err := cf.parse(fs, args, 0, 1, "at most one session")
	if err != nil {
		return err
	}
	session := ""
	if len(pos) == 1 {
		session = pos[0]
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return cl.Events(ctx, session, func(e conference.Event) error {
		if cf.output == "json" {
			b, _ := json.Marshal(e)
			_, err := fmt.Fprintf(stdout, "%s\n", b)
			return err
		}
		line := fmt.Sprintf("%s  %-12s %-11s", e.Time.Local().Format(time.TimeOnly), e.Conference, e.Kind)
		switch {
		case e.Participant != nil:
			p := e.Participant
			line += fmt.Sprintf(" %s %s %s", p.URI, p.State, strings.Join(p.Streams, ","))
			if p.Reason != "" {
				line += " (" + p.Reason + ")"
			}
		case e.Change != nil:
			line += fmt.Sprintf(" stream %d, version %d, %d participants", e.Change.Stream, e.Change.Version, len(e.Change.Results))
		case e.Alert != nil, e.Receiver != nil:
			line += " " + e.Detail
		}
		_, err := fmt.Fprintln(stdout, line)
		return err
	})
}

// printWarnings tells what an import took that RFC 8866 does not allow.
func printWarnings(w io.Writer, ws []string) {
	for _, x := range ws {
		fmt.Fprintf(w, "warning: %s\n", x)
	}
}
