module mcc

go 1.26.0

require (
	github.com/BurntSushi/toml v1.6.0
	github.com/emiago/sipgo v1.7.3
	github.com/icholy/digest v1.2.0
	github.com/pion/rtcp v1.2.20
	github.com/pion/sdp/v3 v3.0.20
	go.etcd.io/bbolt v1.5.0
	golang.org/x/net v0.62.0
)

require (
	github.com/gobwas/httphead v0.1.0 // indirect
	github.com/gobwas/pool v0.2.1 // indirect
	github.com/gobwas/ws v1.3.2 // indirect
	github.com/google/uuid v1.6.0 // indirect
	github.com/pion/randutil v0.1.0 // indirect
	golang.org/x/sync v0.20.0 // indirect
	golang.org/x/sys v0.49.0 // indirect
)
