package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Client calls a running daemon's API.
type Client struct {
	Base  string // http://host:port
	Token string
	HTTP  *http.Client
}

// ErrNoDaemon is returned when no address for the API can be found.
var ErrNoDaemon = errors.New("no running mcc serve found: start one, or give --api and --token (or MCC_API and MCC_TOKEN)")

// Discover builds a client from flags, then MCC_API and MCC_TOKEN, then
// the files the daemon writes in its data directory. An empty (or blank)
// flag or variable counts as unset.
func Discover(addr, token, dataDir string) (*Client, error) {
	addr, token = strings.TrimSpace(addr), strings.TrimSpace(token)
	if addr == "" {
		addr = strings.TrimSpace(os.Getenv("MCC_API"))
	}
	if token == "" {
		token = strings.TrimSpace(os.Getenv("MCC_TOKEN"))
	}
	if addr == "" && dataDir != "" {
		if b, err := os.ReadFile(filepath.Join(dataDir, AddrFile)); err == nil {
			addr = strings.TrimSpace(string(b))
		}
	}
	if token == "" && dataDir != "" {
		if b, err := os.ReadFile(filepath.Join(dataDir, TokenFile)); err == nil {
			token = strings.TrimSpace(string(b))
		}
	}
	if addr == "" {
		return nil, ErrNoDaemon
	}
	if !strings.Contains(addr, "://") {
		addr = "http://" + addr
	}
	return &Client{Base: strings.TrimSuffix(addr, "/"), Token: token, HTTP: &http.Client{Timeout: 90 * time.Second}}, nil
}

// Do sends a request with a JSON body (or raw bytes with contentType) and
// decodes a JSON answer into out. An error answer comes back as *Error.
func (c *Client) Do(ctx context.Context, method, path string, in any, out any) error {
	var body io.Reader
	ct := ""
	switch v := in.(type) {
	case nil:
	case []byte:
		body, ct = bytes.NewReader(v), "application/sdp"
	default:
		b, err := json.Marshal(v)
		if err != nil {
			return err
		}
		body, ct = bytes.NewReader(b), "application/json"
	}
	req, err := http.NewRequestWithContext(ctx, method, c.Base+path, body)
	if err != nil {
		return err
	}
	if ct != "" {
		req.Header.Set("Content-Type", ct)
	}
	req.Header.Set("Authorization", "Bearer "+c.Token)
	res, err := c.HTTP.Do(req)
	if err != nil {
		return fmt.Errorf("cannot reach mcc serve at %s: %w", c.Base, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(io.LimitReader(res.Body, 16<<20))
	if err != nil {
		return err
	}
	if res.StatusCode >= 300 {
		var e struct{ Error *Error }
		if json.Unmarshal(b, &e) == nil && e.Error != nil {
			return e.Error
		}
		return &Error{Code: CodeInternal, Message: fmt.Sprintf("%s %s: %s", method, path, res.Status)}
	}
	switch o := out.(type) {
	case nil:
		return nil
	case *[]byte:
		*o = b
		return nil
	}
	return json.Unmarshal(b, out)
}

// Alive reports whether the daemon answers its health check.
func (c *Client) Alive(ctx context.Context) bool {
	req, err := http.NewRequestWithContext(ctx, "GET", c.Base+"/healthz", nil)
	if err != nil {
		return false
	}
	res, err := c.HTTP.Do(req)
	if err != nil {
		return false
	}
	res.Body.Close()
	return res.StatusCode == http.StatusOK
}
