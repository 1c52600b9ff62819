// Command testconn is a connector for the goplugin tests: it echoes, panics
// (at once, late, or at start), exits, sleeps, shows its environment, answers
// big, and logs on request.
package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/relayhq/relay/sdk/connector"
)

// PanicMessage is what the panic action panics with.
const PanicMessage = "testconn: deliberate panic for the crash test"

// PanicAtStartFile, beside the binary, makes testconn panic as it starts,
// before it serves. (A sandbox may not let it read there, but it may look.)
const PanicAtStartFile = "panic-at-start"

type (
	empty   struct{}
	sleepIn struct {
		MS        int  `json:"ms"`
		IgnoreCtx bool `json:"ignore_ctx,omitempty"`
	}
	bigIn struct {
		Bytes int `json:"bytes"`
	}
	bigOut struct {
		Data string `json:"data"`
	}
	envOut struct {
		Env []string `json:"env"`
	}
	pidOut struct {
		PID int `json:"pid"`
	}
	logIn struct {
		Message string `json:"message"`
	}
	failIn struct {
		Kind string `json:"kind"`
	}
)

func main() {
	// Logs go to stderr as JSON, which the host re-logs under the
	// connector's name. os.Stderr must be taken before Serve swaps it.
	log := hclog.New(&hclog.LoggerOptions{Name: "testconn", Output: os.Stderr, JSONFormat: true})
	if len(os.Args) == 1 {
		// Served by a host (not asked for its spec): leave a mark in the
		// working directory, so a test can tell that the binary ran.
		_ = os.WriteFile(filepath.Join(".", fmt.Sprintf("started-%d", os.Getpid())), nil, 0o644)
		if exe, err := os.Executable(); err == nil {
			if _, err := os.Stat(filepath.Join(filepath.Dir(exe), PanicAtStartFile)); err == nil {
				panic("testconn: deliberate panic at start")
			}
		}
	}
	none := func(name string, timeout time.Duration) connector.ActionSpec {
		return connector.ActionSpec{Name: name, Title: name, SideEffect: connector.None, Timeout: timeout}
	}
	sleep := func(ctx context.Context, req connector.Request[sleepIn]) (empty, error) {
		d := time.Duration(req.Input.MS) * time.Millisecond
		if req.Input.IgnoreCtx {
			time.Sleep(d)
			return empty{}, nil
		}
		select {
		case <-time.After(d):
			return empty{}, nil
		case <-ctx.Done():
			return empty{}, ctx.Err()
		}
	}
	connector.Serve(&connector.Connector{
		Name:    "testconn",
		Version: "0.1.0",
		Title:   "Test connector",
		Actions: []connector.Action{
			connector.NewAction(none("echo", 0), nil,
				func(_ context.Context, req connector.Request[map[string]any]) (map[string]any, error) {
					return req.Input, nil
				}),
			connector.NewAction(none("panic", 0), nil,
				func(context.Context, connector.Request[empty]) (empty, error) {
					panic(PanicMessage)
				}),
			connector.NewAction(none("sleep_panic", 0), nil, // panics after ms, whatever its deadline
				func(_ context.Context, req connector.Request[sleepIn]) (empty, error) {
					time.Sleep(time.Duration(req.Input.MS) * time.Millisecond)
					panic("testconn: deliberate late panic for the crash test")
				}),
			connector.NewAction(none("exit", 0), nil,
				func(context.Context, connector.Request[empty]) (empty, error) {
					os.Exit(7)
					return empty{}, nil
				}),
			connector.NewAction(none("sleep", 0), nil, sleep),
			connector.NewAction(none("sleep1s", time.Second), nil, sleep), // manifest timeout_seconds: 1
			connector.NewAction(none("env", 0), nil,
				func(context.Context, connector.Request[empty]) (envOut, error) {
					return envOut{Env: os.Environ()}, nil
				}),
			connector.NewAction(none("big", 0), nil,
				func(_ context.Context, req connector.Request[bigIn]) (bigOut, error) {
					return bigOut{Data: strings.Repeat("x", req.Input.Bytes)}, nil
				}),
			connector.NewAction(none("pid", 0), nil,
				func(context.Context, connector.Request[empty]) (pidOut, error) {
					return pidOut{PID: os.Getpid()}, nil
				}),
			connector.NewAction(none("log", 0), nil,
				func(_ context.Context, req connector.Request[logIn]) (empty, error) {
					log.Info(req.Input.Message, "source", "testconn")
					// Once serving, os.Stderr is go-plugin's stdio stream.
					fmt.Fprintln(os.Stderr, "plain", req.Input.Message)
					return empty{}, nil
				}),
			connector.NewAction(none("fail", 0), nil,
				func(_ context.Context, req connector.Request[failIn]) (empty, error) {
					switch req.Input.Kind {
					case "invalid":
						return empty{}, &connector.Error{Code: connector.CodeInvalidInput, Message: "bad to",
							Fields: []connector.FieldError{{Pointer: "/to", Message: "not an address"}}}
					case "not_found":
						return empty{}, connector.NotFound("no such thing")
					case "retryable":
						return empty{}, connector.Retryable(1500*time.Millisecond, "busy")
					case "permanent":
						return empty{}, connector.Permanent("refused")
					case "unauthorized":
						return empty{}, connector.Unauthorized("bad token")
					case "egress":
						return empty{}, &connector.Error{Code: connector.CodeEgressDenied, Message: "10.0.0.1 is private"}
					default:
						return empty{}, fmt.Errorf("unclassified failure")
					}
				}),
		},
	})
}
