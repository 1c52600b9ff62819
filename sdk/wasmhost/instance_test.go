package wasmhost_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/relayhq/relay/sdk/egress"
	"github.com/relayhq/relay/sdk/manifest"
	"github.com/relayhq/relay/sdk/protocol/connectorv1"
	"github.com/relayhq/relay/sdk/wasmhost"
)

func action(name, input string) *connectorv1.ActionRequest {
	return &connectorv1.ActionRequest{
		Action: name, InputJson: []byte(input), RunId: "run-1", WorkspaceId: "ws-1",
		Connection: &connectorv1.Connection{ConfigJson: []byte(`{"a":1}`), Secrets: map[string]string{"token": "s3cret"}},
	}
}

// The hand-written echo guest answers every ABI call as the protocol says.
func TestEchoGuest(t *testing.T) {
	ctx := context.Background()
	i := instantiate(t, compile(t, newEngine(t, wasmhost.Options{}), guest(t, "echo")))

	d, err := i.Describe(ctx, &connectorv1.DescribeRequest{})
	if err != nil {
		t.Fatalf("Describe: %v", err)
	}
	m, err := manifest.Parse(d.GetManifestJson())
	if err != nil {
		t.Fatalf("the manifest does not parse: %v\n%s", err, d.GetManifestJson())
	}
	if m.Name != "watecho" || m.Runtime != manifest.RuntimeWASM {
		t.Errorf("manifest = %s@%s runtime %s", m.Name, m.Version, m.Runtime)
	}
	cc, err := i.CheckConfig(ctx, &connectorv1.CheckConfigRequest{Connection: &connectorv1.Connection{ConfigJson: []byte(`{}`)}})
	if err != nil || cc.GetError() != nil {
		t.Fatalf("CheckConfig = %v, %v", cc, err)
	}
	for n := range 1000 { // the allocator must not leak across calls
		in := `{"n":` + strings.Repeat("1", n%50+1) + `,"text":"` + strings.Repeat("é", n%300) + `"}`
		ex, err := i.Execute(ctx, action("echo", in))
		if err != nil || ex.GetError() != nil || string(ex.GetOutputJson()) != in {
			t.Fatalf("Execute #%d = %q, %v, %v; want the input %q", n, ex.GetOutputJson(), ex.GetError(), err, in)
		}
	}
	pv, err := i.Preview(ctx, action("echo", `{"x":true}`))
	if err != nil || string(pv.GetPreviewJson()) != `{"x":true}` {
		t.Fatalf("Preview = %v, %v", pv, err)
	}
	ex, err := i.Execute(ctx, action("nope", `{}`))
	if err != nil || ex.GetError().GetCode() != connectorv1.ErrorCode_ERROR_CODE_UNKNOWN_ACTION {
		t.Fatalf("Execute of an unknown action = %v, %v; want UNKNOWN_ACTION", ex, err)
	}
	ex, err = i.Execute(ctx, action("echo", `[1]`))
	if err != nil || ex.GetError().GetCode() != connectorv1.ErrorCode_ERROR_CODE_INVALID_INPUT || len(ex.GetError().GetFields()) != 1 {
		t.Fatalf("Execute of an array = %v, %v; want INVALID_INPUT with one field", ex, err)
	}
	if i.Broken() {
		t.Fatal("the instance is broken after good calls")
	}
}

func wantError(t *testing.T, err error, kind wasmhost.Kind, substr ...string) *wasmhost.Error {
	t.Helper()
	var we *wasmhost.Error
	if !errors.As(err, &we) {
		t.Fatalf("error = %v (%T); want a *wasmhost.Error of kind %s", err, err, kind)
	}
	if we.Kind != kind {
		t.Fatalf("error = %v; want kind %s", err, kind)
	}
	for _, s := range substr {
		if !strings.Contains(we.Message, s) {
			t.Errorf("error message %q does not say %q", we.Message, s)
		}
	}
	return we
}

// Each kind of misbehaviour fails the call with a clear error and leaves
// the instance broken; a new instance serves.
func TestMisbehavingGuest(t *testing.T) {
	out := &logBuffer{}
	e := newEngine(t, wasmhost.Options{MemoryLimitPages: 128, Logger: newLogger(out)})
	m := compile(t, e, guest(t, "misbehave"))
	for _, tc := range []struct {
		action string
		kind   wasmhost.Kind
		says   []string
	}{
		{"trap", wasmhost.KindCrashed, []string{"trapped during relay_execute", "unreachable", "in function action"}},
		{"grow", wasmhost.KindCrashed, []string{"unreachable", "its memory had grown to 7.1 MiB of its 8.0 MiB ceiling"}},
		{"kaboom", wasmhost.KindCrashed, []string{`unreachable (in function action); it wrote "panic: boom"`}},
		{"xit", wasmhost.KindCrashed, []string{"exited with code 3 during relay_execute"}},
		{"zbig", wasmhost.KindTooLarge, []string{"response of relay_execute is 5242880 bytes, over the 4 MiB message limit"}},
		{"oob", wasmhost.KindCrashed, []string{"outside memory"}},
		{"dbad", wasmhost.KindCrashed, []string{"does not decode as relay.connector.v1.ExecuteResponse"}},
	} {
		t.Run(tc.action, func(t *testing.T) {
			i := instantiate(t, m)
			if _, err := i.Execute(context.Background(), action("echo", `{}`)); err != nil {
				t.Fatalf("echo: %v", err)
			}
			_, err := i.Execute(context.Background(), action(tc.action, `{}`))
			wantError(t, err, tc.kind, tc.says...)
			if !i.Broken() {
				t.Error("the instance is not broken")
			}
			_, err = i.Execute(context.Background(), action("echo", `{}`))
			wantError(t, err, wasmhost.KindCrashed, "broken")
			fresh := instantiate(t, m)
			if ex, err := fresh.Execute(context.Background(), action("echo", `{"ok":1}`)); err != nil || string(ex.GetOutputJson()) != `{"ok":1}` {
				t.Fatalf("a fresh instance after %s: %v, %v", tc.action, ex, err)
			}
		})
	}
}

// A guest in an endless loop, in a recursion that would take ages (no
// loop in it), or asleep, is stopped within its deadline plus 100 ms; the
// instance is broken, the next one serves.
func TestDeadlineStopsGuest(t *testing.T) {
	m := compile(t, newEngine(t, wasmhost.Options{}), guest(t, "misbehave"))
	for _, a := range []string{"loop", "recurse", "sleep"} {
		t.Run(a, func(t *testing.T) {
			i := instantiate(t, m)
			const deadline = 200 * time.Millisecond
			ctx, cancel := context.WithTimeout(context.Background(), deadline)
			defer cancel()
			start := time.Now()
			_, err := i.Execute(ctx, action(a, `{}`))
			elapsed := time.Since(start)
			wantError(t, err, wasmhost.KindTimeout, "deadline")
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("errors.Is(%v, context.DeadlineExceeded) = false", err)
			}
			if elapsed > deadline+100*time.Millisecond {
				t.Errorf("the call returned after %v; want at most %v", elapsed, deadline+100*time.Millisecond)
			}
			if !i.Broken() {
				t.Error("the instance is not broken")
			}
			next := instantiate(t, m)
			if _, err := next.Execute(context.Background(), action("echo", `{}`)); err != nil {
				t.Fatalf("the next call: %v", err)
			}
		})
	}
	t.Run("cancel", func(t *testing.T) {
		i := instantiate(t, m)
		ctx, cancel := context.WithCancel(context.Background())
		time.AfterFunc(50*time.Millisecond, cancel)
		_, err := i.Execute(ctx, action("loop", `{}`))
		wantError(t, err, wasmhost.KindCanceled)
		if !errors.Is(err, context.Canceled) {
			t.Errorf("errors.Is(%v, context.Canceled) = false", err)
		}
	})
	t.Run("already expired", func(t *testing.T) {
		i := instantiate(t, m)
		ctx, cancel := context.WithTimeout(context.Background(), -time.Second)
		defer cancel()
		_, err := i.Execute(ctx, action("echo", `{}`))
		wantError(t, err, wasmhost.KindTimeout)
		if i.Broken() {
			t.Error("a call that never started broke the instance")
		}
	})
}

// Closing the engine waits for a call under way, which ends as it would
// have (an instance's memory is unmapped when it closes, so nothing may
// run in it then); calls and instances asked for afterwards are refused.
// The call is one to relay.http_request whose server holds the request:
// when the server has it, the guest is inside the call.
func TestCloseWaitsForCalls(t *testing.T) {
	arrived := make(chan struct{}, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		arrived <- struct{}{}
		<-r.Context().Done()
	}))
	defer srv.Close()
	e := newEngine(t, wasmhost.Options{})
	m, err := e.CompileWith(context.Background(), guest(t, "misbehave"), wasmhost.ModuleOptions{Egress: egress.New([]string{"*"}, loopback)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Close(context.Background()) })
	busy, idle := instantiate(t, m), instantiate(t, m)
	raw, err := proto.Marshal(&connectorv1.HttpRequest{Url: srv.URL + "/"})
	if err != nil {
		t.Fatal(err)
	}
	const deadline = 300 * time.Millisecond
	ctx, cancel := context.WithTimeout(context.Background(), deadline)
	defer cancel()
	start := time.Now()
	called := make(chan error, 1)
	go func() {
		_, err := busy.Execute(ctx, &connectorv1.ActionRequest{Action: "http", InputJson: raw, InputValidated: true})
		called <- err
	}()
	<-arrived
	if err := e.Close(context.Background()); err != nil {
		t.Fatalf("Close: %v", err)
	}
	// The call cannot end before its deadline: the server holds it.
	if elapsed := time.Since(start); elapsed < deadline {
		t.Errorf("Close returned %v after the call began, before its %v deadline", elapsed, deadline)
	}
	select {
	case err := <-called:
		wantError(t, err, wasmhost.KindTimeout)
	case <-time.After(5 * time.Second):
		t.Fatal("the call did not return")
	}
	_, err = idle.Execute(context.Background(), action("echo", `{}`))
	wantError(t, err, wasmhost.KindCrashed, "closed")
	if _, err := m.Instantiate(context.Background()); err == nil {
		t.Error("Instantiate after Close succeeded")
	}
}

// A request over the message limit is refused before it reaches the
// guest, which stays usable.
func TestRequestTooLarge(t *testing.T) {
	i := instantiate(t, compile(t, newEngine(t, wasmhost.Options{MaxMessageSize: 1 << 10}), guest(t, "echo")))
	_, err := i.Execute(context.Background(), action("echo", `{"a":"`+strings.Repeat("x", 2000)+`"}`))
	wantError(t, err, wasmhost.KindTooLarge, "over the 1 KiB message limit")
	if i.Broken() {
		t.Fatal("a refused request broke the instance")
	}
	if _, err := i.Execute(context.Background(), action("echo", `{}`)); err != nil {
		t.Fatal(err)
	}
}

// The guest's stdout and relay.log reach the host's logger.
func TestGuestLogs(t *testing.T) {
	out := &logBuffer{}
	e := newEngine(t, wasmhost.Options{Logger: newLogger(out)})
	i := instantiate(t, compile(t, e, guest(t, "misbehave")))
	if _, err := i.Execute(context.Background(), action("print", `{}`)); err != nil {
		t.Fatal(err)
	}
	got := out.String()
	for _, want := range []string{"[INFO]  guest: hello from stdout: stream=stdout", "[WARN]  guest: hello from relay.log: stream=log"} {
		if !strings.Contains(got, want) {
			t.Errorf("the log lacks %q:\n%s", want, got)
		}
	}
}

// Two calls at once never share an instance: the guest traps when a call
// enters an instance another call is in, and the race detector sees two
// goroutines write the host's per-instance state (its reused stack and
// buffer).
func TestPoolNeverSharesAnInstance(t *testing.T) {
	m := compile(t, newEngine(t, wasmhost.Options{}), guest(t, "misbehave"))
	const size = 3
	p := wasmhost.NewPool(m, size)
	defer p.Close(context.Background())
	var wg sync.WaitGroup
	errs := make(chan error, 100)
	for range 12 {
		wg.Go(func() {
			for range 5 {
				// A bound, so that a pool that shares instances fails
				// rather than hangs.
				ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
				defer cancel()
				i, err := p.Get(ctx)
				if err != nil {
					errs <- err
					return
				}
				_, err = i.Execute(ctx, action("busy", `{}`))
				p.Put(i)
				if err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if n := p.Idle(); n < 1 || n > size {
		t.Errorf("the pool keeps %d warm instances; want 1..%d", n, size)
	}
}

// A caller beyond the pool's size waits for a free instance or its
// deadline; a broken instance is never handed out again.
func TestPoolWaitsAndDropsBroken(t *testing.T) {
	m := compile(t, newEngine(t, wasmhost.Options{}), guest(t, "misbehave"))
	p := wasmhost.NewPool(m, 1)
	defer p.Close(context.Background())
	held, err := p.Get(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	_, err = p.Get(ctx)
	cancel()
	if we := wantError(t, err, wasmhost.KindTimeout, "waiting for a free instance"); !we.Busy {
		t.Error("Busy is not set")
	}

	got := make(chan *wasmhost.Instance)
	go func() {
		i, err := p.Get(context.Background())
		if err != nil {
			t.Error(err)
		}
		got <- i
	}()
	time.Sleep(20 * time.Millisecond)
	if _, err := held.Execute(context.Background(), action("trap", `{}`)); err == nil {
		t.Fatal("trap succeeded")
	}
	p.Put(held) // broken: closed, its slot freed
	next := <-got
	if next == held {
		t.Fatal("the pool handed out a broken instance")
	}
	if _, err := next.Execute(context.Background(), action("echo", `{}`)); err != nil {
		t.Fatal(err)
	}
	p.Put(next)
	if p.Idle() != 1 {
		t.Fatalf("Idle = %d; want 1", p.Idle())
	}
}

// Without ModuleOptions.Manifest, the host validates inputs against the
// schemas the module describes, before the guest sees them: misbehave's
// echo would echo an array, which its schema refuses. A module that cannot
// describe itself fails unvalidated calls, and serves validated ones.
func TestHostValidatesWithoutAManifest(t *testing.T) {
	ctx := context.Background()
	e := newEngine(t, wasmhost.Options{})
	i := instantiate(t, compile(t, e, guest(t, "misbehave")))
	ex, err := i.Execute(ctx, action("echo", `[1]`))
	if err != nil || ex.GetError().GetCode() != connectorv1.ErrorCode_ERROR_CODE_INVALID_INPUT {
		t.Fatalf("Execute of an array = %v, %v; want INVALID_INPUT from the host", ex, err)
	}
	validated := action("echo", `[1]`)
	validated.InputValidated = true
	if ex, err := i.Execute(ctx, validated); err != nil || string(ex.GetOutputJson()) != `[1]` {
		t.Fatalf("Execute marked validated = %v, %v; want the guest's echo", ex, err)
	}

	mute := instantiate(t, compile(t, e, buildWAT(t, module())))
	_, err = mute.Execute(ctx, action("echo", `{}`))
	wantError(t, err, wasmhost.KindCrashed, "description")
	if mute.Broken() {
		t.Error("a failed description broke the instance")
	}
	mark := action("echo", `{}`)
	mark.InputValidated = true
	if _, err := mute.Execute(ctx, mark); err != nil {
		t.Fatalf("a validated call: %v", err)
	}
}
