package sdp_test

import (
	"fmt"

	"mcc/sdp"
)

func ExampleParseConnection() {
	c, err := sdp.ParseConnection("IN IP4 224.2.1.1/127/3", sdp.MediaLevel)
	fmt.Println(c.Addr, c.TTL, c.Count, err)
	_, err = sdp.ParseConnection("IN IP6 ff15::101/127/3", sdp.MediaLevel)
	fmt.Println(err)
	// Output:
	// 224.2.1.1 127 3 <nil>
	// IPv6 multicast address ff15::101 takes no TTL, only /<number of addresses> (RFC 8866 §5.7)
}

func ExampleLint() {
	desc := "v=0\n" +
		"o=- 1 1 IN IP4 192.0.2.1\n" +
		"s=Lecture\n" +
		"t=0 0\n" +
		"m=audio 16384 RTP/AVP 0\n" +
		"c=IN IP4 239.255.1.1\n"
	for _, p := range sdp.Lint([]byte(desc)) {
		fmt.Println(p)
	}
	// Strictly, as mcc reads what participants answer:
	for _, p := range (sdp.ParseOptions{}).Lint([]byte(desc)) {
		fmt.Println(p)
	}
	// Output:
	// warning: sdp: line 6 "c=IN IP4 239.255.1.1": an IPv4 group without a TTL (RFC 8866 §5.7 wants one): taken as TTL 1
	// sdp: line 6 "c=IN IP4 239.255.1.1": IPv4 multicast address 239.255.1.1 needs a TTL: 239.255.1.1/<ttl> (RFC 8866 §5.7)
}
