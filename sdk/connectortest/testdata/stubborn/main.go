// Command stubborn is a connector whose execute ignores its context, each
// mode in a way the conformance kit's deadline check must report; its other
// promises it keeps. Mode "ok" answers at once; the others are meant for
// the kit's Hang fixture, addr being the hanging peer:
//
//   - "block" connects to addr and reads without a deadline;
//   - "sleep" sleeps for 20 s before connecting;
//   - "retry" connects again and again for 5 s, each attempt with its own
//     short timeout but none of them with the call's context.
package main

import (
	"context"
	"io"
	"net"
	"time"

	"github.com/relayhq/relay/sdk/connector"
)

// FetchInput is the input of the fetch action.
type FetchInput struct {
	Mode string `json:"mode" jsonschema:"ok, block, sleep or retry"`
	Addr string `json:"addr,omitempty"`
}

// FetchOutput says how many bytes came back.
type FetchOutput struct {
	Bytes int `json:"bytes"`
}

func main() {
	connector.Serve(&connector.Connector{
		Name: "stubborn", Version: "1.0.0", Title: "Stubborn",
		Egress: []string{"*"},
		Actions: []connector.Action{
			connector.NewAction(connector.ActionSpec{Name: "fetch", Title: "Fetch", SideEffect: connector.None}, nil, fetch),
		},
	})
}

func fetch(_ context.Context, req connector.Request[FetchInput]) (FetchOutput, error) {
	// Every dial below uses context.Background(), not the call's context.
	dial := func() (net.Conn, error) { return req.Egress.DialContext(context.Background(), "tcp", req.Input.Addr) }
	switch req.Input.Mode {
	case "ok":
		return FetchOutput{}, nil
	case "block":
		conn, err := dial()
		if err != nil {
			return FetchOutput{}, connector.Retryable(0, "%v", err)
		}
		defer conn.Close()
		n, err := io.Copy(io.Discard, conn)
		return FetchOutput{Bytes: int(n)}, err
	case "sleep":
		time.Sleep(20 * time.Second)
		conn, err := dial()
		if err != nil {
			return FetchOutput{}, connector.Retryable(0, "%v", err)
		}
		conn.Close()
		return FetchOutput{}, nil
	case "retry":
		for end := time.Now().Add(5 * time.Second); time.Now().Before(end); {
			conn, err := dial()
			if err != nil {
				time.Sleep(50 * time.Millisecond)
				continue
			}
			conn.SetDeadline(time.Now().Add(100 * time.Millisecond))
			n, err := io.Copy(io.Discard, conn)
			conn.Close()
			if err == nil {
				return FetchOutput{Bytes: int(n)}, nil
			}
		}
		return FetchOutput{}, connector.Retryable(0, "no answer from %s", req.Input.Addr)
	}
	return FetchOutput{}, connector.InvalidInput("mode %q", req.Input.Mode)
}
