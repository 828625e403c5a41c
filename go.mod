module mcc

go 1.26.0

require (
	github.com/pion/sdp/v3 v3.0.20
	go.etcd.io/bbolt v1.5.0
)

require (
	github.com/pion/randutil v0.1.0 // indirect
	golang.org/x/sys v0.49.0 // indirect
)
