package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"mcc/multicast"
)

// allocatorFile is the name, inside the data directory, of the optional
// allocator configuration: custom pools and the RTP port range.
const allocatorFile = "allocator.json"

// allocatorConfig is allocator.json:
//
//	{
//	  "ports": {"min": 20000, "max": 29999},
//	  "pools": [
//	    {"name": "lab", "prefix": "239.77.0.0/16", "ttl": 8, "exclude": ["239.77.0.0/24"]},
//	    {"name": "studio-v6", "prefix": "ff15::/16", "ttl": 15}
//	  ]
//	}
type allocatorConfig struct {
	Ports struct {
		Min uint16 `json:"min"`
		Max uint16 `json:"max"`
	} `json:"ports"`
	Pools []multicast.Pool `json:"pools"`
}

// loadAllocatorConfig reads dir/allocator.json; a missing file is an
// empty configuration. Errors name the file and, where it can, the key.
func loadAllocatorConfig(dir string) (allocatorConfig, error) {
	var c allocatorConfig
	path := filepath.Join(dir, allocatorFile)
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return c, nil
	}
	if err != nil {
		return c, err
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		var se *json.SyntaxError
		if errors.As(err, &se) {
			line := bytes.Count(b[:se.Offset], []byte("\n")) + 1
			return c, fmt.Errorf("%s:%d: %v", path, line, err)
		}
		return c, fmt.Errorf("%s: %v", path, err)
	}
	for _, p := range c.Pools {
		for _, d := range multicast.DefaultPools() {
			if p.Name == d.Name {
				return c, fmt.Errorf("%s: pool %q: that name belongs to a built-in pool; choose another", path, p.Name)
			}
		}
	}
	if (c.Ports.Min == 0) != (c.Ports.Max == 0) {
		return c, fmt.Errorf("%s: ports: set both min and max", path)
	}
	return c, nil
}
