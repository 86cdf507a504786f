// fluentclient: a forward-protocol client for logpipe's tests, built on
// fluent-logger-golang, the library Docker's fluentd log driver uses.
//
//	fluentclient -addr 127.0.0.1:24224 -tag app -count 10000 [-ack] [-async]
//
// It posts records {"message": "line N", "n": N} for N = 1..count and prints one JSON
// line: how many Post calls succeeded. With -ack every Post waits for the receiver's
// ack of its chunk, so a success means the receiver acknowledged that chunk.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"strconv"
	"time"

	"github.com/fluent/fluent-logger-golang/fluent"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:24224", "host:port of the receiver")
	tag := flag.String("tag", "app", "the tag")
	count := flag.Int("count", 1000, "records to send")
	ack := flag.Bool("ack", false, "request an ack for every chunk")
	subsecond := flag.Bool("subsecond", true, "EventTime with nanoseconds")
	flag.Parse()

	host, portText := splitHostPort(*addr)
	port, err := strconv.Atoi(portText)
	if err != nil {
		fail(err)
	}
	logger, err := fluent.New(fluent.Config{
		FluentHost:         host,
		FluentPort:         port,
		RequestAck:         *ack,
		SubSecondPrecision: *subsecond,
		Timeout:            10 * time.Second,
		WriteTimeout:       10 * time.Second,
		ReadTimeout:        30 * time.Second,
		MaxRetry:           20,
	})
	if err != nil {
		fail(err)
	}
	acked, failed := 0, 0
	for n := 1; n <= *count; n++ {
		record := map[string]interface{}{"message": fmt.Sprintf("line %d", n), "n": n}
		if err := logger.Post(*tag, record); err != nil {
			failed++
			fmt.Fprintln(os.Stderr, "post failed:", err)
			continue
		}
		acked++
	}
	if err := logger.Close(); err != nil {
		fmt.Fprintln(os.Stderr, "close:", err)
	}
	out, _ := json.Marshal(map[string]int{"posted": acked, "failed": failed})
	fmt.Println(string(out))
	if failed > 0 {
		os.Exit(1)
	}
}

func splitHostPort(addr string) (string, string) {
	for i := len(addr) - 1; i >= 0; i-- {
		if addr[i] == ':' {
			return addr[:i], addr[i+1:]
		}
	}
	return addr, ""
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, err)
	os.Exit(2)
}
