package wasmhost

import (
	"context"
	"errors"
	"sync"
)

// Pool keeps up to size instances of a module and hands each to one caller
// at a time. Instances are made on demand and reused warm; one that Broken
// reports is closed when put back, never handed out again. A caller beyond
// size waits for a free instance or for its context to end. Safe for
// concurrent use.
type Pool struct {
	m      *Module
	tokens chan struct{} // one per instance handed out or being made

	mu     sync.Mutex
	idle   []*Instance // the most recently used last
	closed bool
}

// NewPool returns a pool of at most size instances (at least 1) of m. It
// makes no instance until the first Get.
func NewPool(m *Module, size int) *Pool {
	return &Pool{m: m, tokens: make(chan struct{}, max(size, 1))}
}

// ErrPoolClosed is returned by Get after Close.
var ErrPoolClosed = errors.New("wasmhost: the pool is closed")

// Get returns an idle instance, or a new one while the pool has fewer than
// its size, or waits for one to be put back. The caller owns it until Put.
// When ctx ends first, the error is an *Error of KindTimeout or
// KindCanceled, with Busy set if every instance was in use; a failed
// instantiation is returned as Module.Instantiate returns it.
func (p *Pool) Get(ctx context.Context) (*Instance, error) {
	if ctx.Err() != nil {
		return nil, ctxError(ctx, "getting an instance")
	}
	select {
	case p.tokens <- struct{}{}:
	default:
		select {
		case p.tokens <- struct{}{}:
		case <-ctx.Done():
			err := ctxError(ctx, "waiting for a free instance")
			err.Busy = true
			return nil, err
		}
	}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		<-p.tokens
		return nil, ErrPoolClosed
	}
	if n := len(p.idle); n > 0 {
		i := p.idle[n-1]
		p.idle[n-1] = nil
		p.idle = p.idle[:n-1]
		p.mu.Unlock()
		return i, nil
	}
	p.mu.Unlock()
	i, err := p.m.Instantiate(ctx)
	if err != nil {
		<-p.tokens
		return nil, err
	}
	return i, nil
}

// Put gives back an instance from Get. A broken one is closed.
func (p *Pool) Put(i *Instance) {
	p.mu.Lock()
	keep := !p.closed && !i.Broken()
	if keep {
		p.idle = append(p.idle, i)
	}
	p.mu.Unlock()
	<-p.tokens
	if !keep {
		_ = i.Close(context.Background())
	}
}

// Idle is the number of warm instances waiting for a call.
func (p *Pool) Idle() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.idle)
}

// Close closes the idle instances; those handed out are closed when they
// are put back. Get fails after Close. It does not close the module.
func (p *Pool) Close(ctx context.Context) error {
	p.mu.Lock()
	p.closed = true
	idle := p.idle
	p.idle = nil
	p.mu.Unlock()
	var err error
	for _, i := range idle {
		err = errors.Join(err, i.Close(ctx))
	}
	return err
}
