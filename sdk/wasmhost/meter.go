package wasmhost

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
)

// A guest's running time is bounded by metering, not by wazero's
// WithCloseOnContextDone: that option makes every loop iteration leave the
// compiled code for a check in Go (about 27 ns an iteration in wazero
// 1.12), which more than doubled a Go-built guest's call. Instead, before
// compiling, meter rewrites the module so that function entries and loop
// iterations count down a fuel global of its own, and only when
// the fuel runs out calls the host function relay.__yield. The host checks
// the call's context there (an ended context stops the guest, which traps)
// and hands out the next budget. Only functions that call others are
// metered on entry: one that calls none cannot recurse, and its loops are
// metered. Any endless run either loops or calls without end, so it
// reaches the host at least every meterBudget loop iterations or entries
// into calling functions: a guest in an endless loop or an endless
// recursion is stopped, and the Go scheduler gets a safe point in a
// long-running guest.
//
// The rewrite adds one function type, one import (at the end of the
// imports, so every defined function's index moves up by one), one
// mutable global (after the others, so no global index moves) and the
// checks; it renumbers every reference to a defined function (calls,
// ref.func, exports, the start function, element segments, the name
// section). Code that refers to a global or a function the original module
// does not have is refused, so that the guest can neither touch the fuel
// nor call the yield itself. An instruction this parser does not know is
// refused as well: wazero's WebAssembly 2.0 core features, nothing more.

const (
	// meterImport is the host function the metered code calls, in module
	// "relay". A guest may not import it itself.
	meterImport = "__yield"
	// meterBudget is the number of function entries and loop iterations
	// between two calls of relay.__yield.
	meterBudget = 1 << 14
	// maxLocals is the most locals a function may declare, as in the
	// engines of the web browsers; wazero reserves room for them all.
	maxLocals = 50000
)

// Section ids.
const (
	secCustom    = 0
	secType      = 1
	secImport    = 2
	secFunction  = 3
	secTable     = 4
	secMemory    = 5
	secGlobal    = 6
	secExport    = 7
	secStart     = 8
	secElement   = 9
	secCode      = 10
	secData      = 11
	secDataCount = 12
)

// sectionRank is the order sections must come in; custom sections may be
// anywhere.
var sectionRank = map[byte]int{
	secType: 1, secImport: 2, secFunction: 3, secTable: 4, secMemory: 5, secGlobal: 6,
	secExport: 7, secStart: 8, secElement: 9, secDataCount: 10, secCode: 11, secData: 12,
}

var errTruncated = errors.New("unexpected end of the module")

// wasmReader decodes a module's bytes.
type wasmReader struct {
	b   []byte
	off int
}

func (r *wasmReader) done() bool { return r.off >= len(r.b) }

func (r *wasmReader) byte() (byte, error) {
	if r.off >= len(r.b) {
		return 0, errTruncated
	}
	c := r.b[r.off]
	r.off++
	return c, nil
}

// u32 reads an unsigned LEB128 number of at most 32 bits.
func (r *wasmReader) u32() (uint32, error) {
	var v uint32
	for shift := 0; shift < 35; shift += 7 {
		c, err := r.byte()
		if err != nil {
			return 0, err
		}
		if shift == 28 && c&0x70 != 0 {
			return 0, errors.New("a 32-bit number is too large")
		}
		v |= uint32(c&0x7f) << shift
		if c&0x80 == 0 {
			return v, nil
		}
	}
	return 0, errors.New("a 32-bit number is too long")
}

// skipLEB skips a LEB128 number, signed or not, of at most 64 bits.
func (r *wasmReader) skipLEB() error {
	for i := r.off; i < len(r.b) && i < r.off+10; i++ {
		if r.b[i]&0x80 == 0 {
			r.off = i + 1
			return nil
		}
	}
	if len(r.b)-r.off < 10 {
		return errTruncated
	}
	return errors.New("a number is too long")
}

func (r *wasmReader) skip(n int) error {
	if n < 0 || len(r.b)-r.off < n {
		return errTruncated
	}
	r.off += n
	return nil
}

// str reads a name.
func (r *wasmReader) str() (string, error) {
	n, err := r.u32()
	if err != nil {
		return "", err
	}
	start := r.off
	if err := r.skip(int(n)); err != nil {
		return "", err
	}
	return string(r.b[start:r.off]), nil
}

// name skips a name (its length, then its bytes).
func (r *wasmReader) name() error {
	n, err := r.u32()
	if err != nil {
		return err
	}
	return r.skip(int(n))
}

func (r *wasmReader) limits() error {
	flags, err := r.byte()
	if err != nil {
		return err
	}
	if flags > 7 {
		return fmt.Errorf("unknown limits flags 0x%02x", flags)
	}
	if err := r.skipLEB(); err != nil {
		return err
	}
	if flags&1 != 0 {
		return r.skipLEB()
	}
	return nil
}

func appendU32(b []byte, v uint32) []byte {
	for v >= 0x80 {
		b = append(b, byte(v)|0x80)
		v >>= 7
	}
	return append(b, byte(v))
}

// meterer holds what the rewrite needs to know of a module.
type meterer struct {
	types, importedFuncs, funcs, globals uint32
	// yield and fuel are the indices of relay.__yield and the fuel global
	// in the metered module.
	yield, fuel uint32
	check       []byte // the fuel check, as code
	calls       bool   // the function being rewritten calls another
}

// fn renumbers a function index of the original module.
func (m *meterer) fn(idx uint32) (uint32, error) {
	switch {
	case idx >= m.funcs:
		return 0, fmt.Errorf("function index %d is out of range (%d functions)", idx, m.funcs)
	case idx >= m.importedFuncs:
		return idx + 1, nil
	}
	return idx, nil
}

type section struct {
	id   byte
	body []byte
}

// meter returns the metered form of a WebAssembly module (see above), or
// an error when the module cannot be read or uses what meter does not
// know.
func meter(wasm []byte) ([]byte, error) {
	if len(wasm) < 8 || !bytes.Equal(wasm[:4], []byte("\x00asm")) {
		return nil, errors.New("not a WebAssembly module")
	}
	if !bytes.Equal(wasm[4:8], []byte{1, 0, 0, 0}) {
		return nil, fmt.Errorf("WebAssembly binary version %d is not supported", wasm[4])
	}
	var sections []section
	seen := map[byte]bool{}
	last := 0
	r := &wasmReader{b: wasm, off: 8}
	for !r.done() {
		id, err := r.byte()
		if err != nil {
			return nil, err
		}
		size, err := r.u32()
		if err != nil {
			return nil, err
		}
		start := r.off
		if err := r.skip(int(size)); err != nil {
			return nil, err
		}
		if id != secCustom {
			rank, ok := sectionRank[id]
			if !ok {
				return nil, fmt.Errorf("unknown section id %d", id)
			}
			if seen[id] || rank < last {
				return nil, fmt.Errorf("section id %d is repeated or out of order", id)
			}
			seen[id], last = true, rank
		}
		sections = append(sections, section{id, wasm[start:r.off]})
	}

	m := &meterer{}
	var definedFuncs, codeCount uint32
	for _, s := range sections {
		var err error
		switch s.id {
		case secType:
			m.types, err = vecLen(s.body)
		case secImport:
			err = m.countImports(s.body)
		case secFunction:
			definedFuncs, err = vecLen(s.body)
		case secGlobal:
			var n uint32
			n, err = vecLen(s.body)
			m.globals += n
		case secCode:
			codeCount, err = vecLen(s.body)
		case secTable, secMemory, secElement, secData, secExport:
			_, err = vecLen(s.body)
		case secDataCount:
			var n uint32
			if n, err = vecLen(s.body); err == nil && int64(n) > int64(len(wasm)) {
				err = fmt.Errorf("%d data segments in a module of %d bytes", n, len(wasm))
			}
		}
		if err != nil {
			return nil, fmt.Errorf("section %d: %w", s.id, err)
		}
	}
	if definedFuncs != codeCount {
		return nil, fmt.Errorf("%d functions are declared but %d have code", definedFuncs, codeCount)
	}
	m.funcs = m.importedFuncs + definedFuncs
	m.yield, m.fuel = m.importedFuncs, m.globals
	m.check = m.fuelCheck()

	out := make([]byte, 0, len(wasm)+len(wasm)/8)
	out = append(out, wasm[:8]...)
	added := map[byte]bool{}
	emit := func(id byte, body []byte) {
		out = append(out, id)
		out = appendU32(out, uint32(len(body)))
		out = append(out, body...)
	}
	// addMissing emits the type, import and global sections the module
	// lacks before the first section that must follow them.
	addMissing := func(before int) {
		for _, id := range []byte{secType, secImport, secGlobal} {
			if !seen[id] && !added[id] && sectionRank[id] < before {
				added[id] = true
				body, _ := m.rewrite(id, []byte{0}) // an empty vector
				emit(id, body)
			}
		}
	}
	for _, s := range sections {
		if s.id != secCustom {
			addMissing(sectionRank[s.id])
		}
		body, err := m.rewrite(s.id, s.body)
		if err != nil {
			return nil, fmt.Errorf("section %d: %w", s.id, err)
		}
		if body != nil {
			emit(s.id, body)
		}
	}
	addMissing(len(sectionRank) + 1)
	return out, nil
}

// vecLen reads the length of the vector a section holds. Every element
// takes at least a byte: a longer vector is refused before wazero would
// reserve room for it.
func vecLen(body []byte) (uint32, error) {
	n, err := (&wasmReader{b: body}).u32()
	if err == nil && int64(n) > int64(len(body)) {
		err = fmt.Errorf("a vector of %d elements in a section of %d bytes", n, len(body))
	}
	return n, err
}

func (m *meterer) countImports(body []byte) error {
	r := &wasmReader{b: body}
	n, err := r.u32()
	if err != nil {
		return err
	}
	for range n {
		mod, err := r.str()
		if err != nil {
			return err
		}
		name, err := r.str()
		if err != nil {
			return err
		}
		if mod == relayModuleName && name == meterImport {
			return fmt.Errorf("the module imports %s.%s, which the host reserves", relayModuleName, meterImport)
		}
		kind, err := r.byte()
		if err != nil {
			return err
		}
		switch kind {
		case 0: // function
			m.importedFuncs++
			err = r.skipLEB()
		case 1: // table
			if err = r.skipLEB(); err == nil {
				err = r.limits()
			}
		case 2: // memory
			err = r.limits()
		case 3: // global
			m.globals++
			err = r.skip(2)
		default:
			err = fmt.Errorf("unknown import kind %d", kind)
		}
		if err != nil {
			return err
		}
	}
	if !r.done() {
		return errors.New("bytes after the imports")
	}
	return nil
}

// fuelCheck is the code put at the entry of each function that calls
// others and at each loop start:
//
//	global.get $fuel
//	i32.eqz
//	if
//	  call $yield      ;; stops the guest, or returns the next budget
//	  global.set $fuel
//	end
//	global.get $fuel
//	i32.const 1
//	i32.sub
//	global.set $fuel
//
// It leaves the operand stack as it found it.
func (m *meterer) fuelCheck() []byte {
	var b []byte
	b = appendU32(append(b, 0x23), m.fuel)
	b = append(b, 0x45, 0x04, 0x40)
	b = appendU32(append(b, 0x10), m.yield)
	b = appendU32(append(b, 0x24), m.fuel)
	b = append(b, 0x0b)
	b = appendU32(append(b, 0x23), m.fuel)
	b = append(b, 0x41, 0x01, 0x6b)
	return appendU32(append(b, 0x24), m.fuel)
}

// rewrite returns a section's new body; nil drops the section.
func (m *meterer) rewrite(id byte, body []byte) ([]byte, error) {
	r := &wasmReader{b: body}
	switch id {
	case secType:
		n, err := r.u32()
		if err != nil {
			return nil, err
		}
		out := appendU32(nil, n+1)
		out = append(out, body[r.off:]...)
		return append(out, 0x60, 0x00, 0x01, 0x7f), nil // () -> i32
	case secImport:
		n, err := r.u32()
		if err != nil {
			return nil, err
		}
		out := appendU32(nil, n+1)
		out = append(out, body[r.off:]...)
		out = appendU32(out, uint32(len(relayModuleName)))
		out = append(out, relayModuleName...)
		out = appendU32(out, uint32(len(meterImport)))
		out = append(out, meterImport...)
		return appendU32(append(out, 0x00), m.types), nil
	case secGlobal:
		return m.rewriteGlobals(r)
	case secExport:
		return m.rewriteExports(r)
	case secStart:
		idx, err := r.u32()
		if err != nil {
			return nil, err
		}
		if idx, err = m.fn(idx); err != nil {
			return nil, err
		}
		return appendU32(nil, idx), nil
	case secElement:
		return m.rewriteElements(r)
	case secCode:
		return m.rewriteCode(r)
	case secCustom:
		return m.rewriteCustom(body), nil
	}
	return body, nil
}

func (m *meterer) rewriteGlobals(r *wasmReader) ([]byte, error) {
	n, err := r.u32()
	if err != nil {
		return nil, err
	}
	out := appendU32(make([]byte, 0, len(r.b)+8), n+1)
	for range n {
		start := r.off
		if err := r.skip(2); err != nil { // value type, mutability
			return nil, err
		}
		out = append(out, r.b[start:r.off]...)
		if out, err = m.expr(r, out, false); err != nil {
			return nil, err
		}
	}
	if !r.done() {
		return nil, errors.New("bytes after the globals")
	}
	out = append(out, 0x7f, 0x01, 0x41) // mutable i32 = meterBudget
	out = appendU32(out, meterBudget)   // (positive and under 2^20: the same bytes as signed)
	return append(out, 0x0b), nil
}

func (m *meterer) rewriteExports(r *wasmReader) ([]byte, error) {
	n, err := r.u32()
	if err != nil {
		return nil, err
	}
	out := appendU32(make([]byte, 0, len(r.b)+8), n)
	for range n {
		start := r.off
		if err := r.name(); err != nil {
			return nil, err
		}
		kind, err := r.byte()
		if err != nil {
			return nil, err
		}
		out = append(out, r.b[start:r.off]...)
		idx, err := r.u32()
		if err != nil {
			return nil, err
		}
		switch kind {
		case 0:
			if idx, err = m.fn(idx); err != nil {
				return nil, err
			}
		case 3:
			if idx >= m.globals {
				return nil, fmt.Errorf("global index %d is out of range (%d globals)", idx, m.globals)
			}
		}
		out = appendU32(out, idx)
	}
	if !r.done() {
		return nil, errors.New("bytes after the exports")
	}
	return out, nil
}

func (m *meterer) rewriteElements(r *wasmReader) ([]byte, error) {
	n, err := r.u32()
	if err != nil {
		return nil, err
	}
	out := appendU32(make([]byte, 0, len(r.b)+64), n)
	for range n {
		flags, err := r.u32()
		if err != nil {
			return nil, err
		}
		if flags > 7 {
			return nil, fmt.Errorf("unknown element segment flags %d", flags)
		}
		out = appendU32(out, flags)
		if flags == 2 || flags == 6 { // explicit table index
			start := r.off
			if err := r.skipLEB(); err != nil {
				return nil, err
			}
			out = append(out, r.b[start:r.off]...)
		}
		if flags&1 == 0 { // active: an offset
			if out, err = m.expr(r, out, false); err != nil {
				return nil, err
			}
		}
		if flags != 0 && flags != 4 { // element kind or reference type
			start := r.off
			if err := r.skip(1); err != nil {
				return nil, err
			}
			out = append(out, r.b[start:r.off]...)
		}
		count, err := r.u32()
		if err != nil {
			return nil, err
		}
		out = appendU32(out, count)
		for range count {
			if flags&4 != 0 {
				out, err = m.expr(r, out, false)
			} else {
				var idx uint32
				if idx, err = r.u32(); err == nil {
					idx, err = m.fn(idx)
					out = appendU32(out, idx)
				}
			}
			if err != nil {
				return nil, err
			}
		}
	}
	if !r.done() {
		return nil, errors.New("bytes after the element segments")
	}
	return out, nil
}

func (m *meterer) rewriteCode(r *wasmReader) ([]byte, error) {
	n, err := r.u32()
	if err != nil {
		return nil, err
	}
	out := appendU32(make([]byte, 0, len(r.b)+len(r.b)/4), n)
	var body []byte
	for i := range n {
		size, err := r.u32()
		if err != nil {
			return nil, err
		}
		end := r.off + int(size)
		if end > len(r.b) || end < r.off {
			return nil, errTruncated
		}
		fr := &wasmReader{b: r.b[:end], off: r.off}
		if body, err = m.function(fr, body[:0]); err != nil {
			return nil, fmt.Errorf("function %d: %w", m.importedFuncs+i, err)
		}
		if !fr.done() {
			return nil, fmt.Errorf("function %d: bytes after its end", m.importedFuncs+i)
		}
		out = appendU32(out, uint32(len(body)))
		out = append(out, body...)
		r.off = end
	}
	if !r.done() {
		return nil, errors.New("bytes after the function bodies")
	}
	return out, nil
}

// function rewrites one function body: its locals, the fuel check if it
// calls other functions, then its code with a fuel check at the start of
// each loop.
func (m *meterer) function(r *wasmReader, out []byte) ([]byte, error) {
	start := r.off
	groups, err := r.u32()
	if err != nil {
		return nil, err
	}
	var locals uint64
	for range groups {
		n, err := r.u32()
		if err != nil {
			return nil, err
		}
		if locals += uint64(n); locals > maxLocals {
			return nil, fmt.Errorf("over %d locals", maxLocals)
		}
		if err := r.skip(1); err != nil {
			return nil, err
		}
	}
	out = append(out, r.b[start:r.off]...)
	at := len(out)
	m.calls = false
	out, err = m.expr(r, out, true)
	if err != nil {
		return nil, err
	}
	// A function that calls none cannot recurse, and its loops are
	// metered: only a function that calls pays the check on entry. Go
	// code enters small leaf functions all the time.
	if m.calls {
		out = slices.Insert(out, at, m.check...)
	}
	return out, nil
}

// expr copies code up to and including the `end` that closes it,
// renumbering function indices, refusing references to globals and
// functions the original module lacks, and, when metered, adding the fuel
// check after each loop's block type. Bytes it keeps as they are are
// copied in runs.
func (m *meterer) expr(r *wasmReader, out []byte, metered bool) ([]byte, error) {
	depth := 0
	run := r.off // the first byte not yet copied
	for {
		if r.off >= len(r.b) {
			return nil, errTruncated
		}
		op := r.b[r.off]
		r.off++
		var err error
		switch immediate[op] {
		case immNone:
		case immLEB:
			err = r.skipLEB()
		case immMemarg:
			err = r.memarg()
		case immBytes4:
			err = r.skip(4)
		case immBytes8:
			err = r.skip(8)
		case immBlock: // block, loop, if
			depth++
			err = r.skipLEB()
			if op == 0x03 && metered && err == nil {
				out = append(out, r.b[run:r.off]...)
				out = append(out, m.check...)
				run = r.off
			}
		case immEnd:
			if depth == 0 {
				return append(out, r.b[run:r.off]...), nil
			}
			depth--
		case immFunc: // call, ref.func
			m.calls = m.calls || op == 0x10
			out = append(out, r.b[run:r.off]...)
			var idx uint32
			if idx, err = r.u32(); err == nil {
				idx, err = m.fn(idx)
				out = appendU32(out, idx)
			}
			run = r.off
		case immGlobal:
			var idx uint32
			if idx, err = r.u32(); err == nil && idx >= m.globals {
				err = fmt.Errorf("global index %d is out of range (%d globals)", idx, m.globals)
			}
		case immCallIndirect:
			m.calls = true
			var idx uint32
			if idx, err = r.u32(); err == nil {
				if idx >= m.types {
					err = fmt.Errorf("type index %d is out of range (%d types)", idx, m.types)
				} else {
					err = r.skipLEB()
				}
			}
		default:
			err = r.otherImmediates(op)
		}
		if err != nil {
			return nil, err
		}
	}
}

// The immediates an instruction has, by opcode.
const (
	immInvalid = iota
	immNone
	immLEB
	immMemarg
	immBytes4
	immBytes8
	immBlock
	immEnd
	immFunc
	immGlobal
	immCallIndirect
	immOther
)

// immediate is the kind of immediates of each one-byte opcode of the
// WebAssembly 2.0 core (sign extension, saturating conversions, bulk
// memory, reference types, multi-value, 128-bit SIMD).
var immediate = func() (t [256]uint8) {
	for op := 0x45; op <= 0xc4; op++ { // numeric instructions
		t[op] = immNone
	}
	for _, op := range []int{0x00, 0x01, 0x05, 0x0f, 0x1a, 0x1b, 0xd1} {
		t[op] = immNone
	}
	for _, op := range []int{0x0c, 0x0d, 0x20, 0x21, 0x22, 0x25, 0x26, 0x3f, 0x40, 0x41, 0x42, 0xd0} {
		t[op] = immLEB
	}
	for op := 0x28; op <= 0x3e; op++ {
		t[op] = immMemarg
	}
	t[0x43], t[0x44] = immBytes4, immBytes8
	t[0x02], t[0x03], t[0x04] = immBlock, immBlock, immBlock
	t[0x0b] = immEnd
	t[0x10], t[0xd2] = immFunc, immFunc
	t[0x23], t[0x24] = immGlobal, immGlobal
	t[0x11] = immCallIndirect
	t[0x0e], t[0x1c], t[0xfc], t[0xfd] = immOther, immOther, immOther, immOther
	return t
}()

// otherImmediates skips the immediates of br_table, typed select and the
// prefixed instructions, and refuses an unknown instruction.
func (r *wasmReader) otherImmediates(op byte) error {
	switch op {
	case 0x0e: // br_table
		n, err := r.u32()
		if err != nil {
			return err
		}
		for range uint64(n) + 1 {
			if err := r.skipLEB(); err != nil {
				return err
			}
		}
		return nil
	case 0x1c: // select with types
		n, err := r.u32()
		if err != nil {
			return err
		}
		return r.skip(int(n))
	case 0xfc:
		sub, err := r.u32()
		if err != nil {
			return err
		}
		switch {
		case sub <= 7:
			return nil
		case sub == 9 || sub == 11 || sub == 13 || sub == 15 || sub == 16 || sub == 17:
			return r.skipLEB()
		case sub == 8 || sub == 10 || sub == 12 || sub == 14:
			if err := r.skipLEB(); err != nil {
				return err
			}
			return r.skipLEB()
		}
		return fmt.Errorf("unknown instruction 0xfc %d", sub)
	case 0xfd:
		sub, err := r.u32()
		if err != nil {
			return err
		}
		switch {
		case sub <= 11 || sub == 92 || sub == 93:
			return r.memarg()
		case sub == 12 || sub == 13:
			return r.skip(16)
		case sub >= 21 && sub <= 34:
			return r.skip(1)
		case sub >= 84 && sub <= 91:
			if err := r.memarg(); err != nil {
				return err
			}
			return r.skip(1)
		case sub <= 0xff:
			return nil
		}
		return fmt.Errorf("unknown instruction 0xfd %d", sub)
	}
	return fmt.Errorf("unknown instruction 0x%02x", op)
}

func (r *wasmReader) memarg() error {
	align, err := r.u32()
	if err != nil {
		return err
	}
	if align >= 0x40 {
		return errors.New("a memory index in a memory instruction (multiple memories) is not supported")
	}
	return r.skipLEB()
}

// rewriteCustom renumbers the functions in the "name" section. A name
// section it cannot read is dropped: names only label stack traces. Other
// custom sections are kept as they are.
func (m *meterer) rewriteCustom(body []byte) []byte {
	r := &wasmReader{b: body}
	if err := r.name(); err != nil {
		return nil
	}
	if string(body[:r.off]) != "\x04name" {
		return body
	}
	out := append([]byte(nil), body[:r.off]...)
	for !r.done() {
		id, err := r.byte()
		if err != nil {
			return nil
		}
		size, err := r.u32()
		if err != nil {
			return nil
		}
		start := r.off
		if r.skip(int(size)) != nil {
			return nil
		}
		sub := body[start:r.off]
		if id == 1 || id == 2 {
			if sub, err = m.rewriteNames(id, sub); err != nil {
				return nil
			}
		}
		out = append(out, id)
		out = appendU32(out, uint32(len(sub)))
		out = append(out, sub...)
	}
	return out
}

// rewriteNames renumbers the function names (subsection 1) or the local
// names (subsection 2, by function).
func (m *meterer) rewriteNames(id byte, sub []byte) ([]byte, error) {
	r := &wasmReader{b: sub}
	n, err := r.u32()
	if err != nil {
		return nil, err
	}
	out := appendU32(make([]byte, 0, len(sub)+16), n)
	for range n {
		idx, err := r.u32()
		if err != nil {
			return nil, err
		}
		if idx, err = m.fn(idx); err != nil {
			return nil, err
		}
		out = appendU32(out, idx)
		start := r.off
		if id == 1 {
			err = r.name()
		} else {
			var locals uint32
			if locals, err = r.u32(); err == nil {
				for range locals {
					if err = r.skipLEB(); err == nil {
						err = r.name()
					}
					if err != nil {
						break
					}
				}
			}
		}
		if err != nil {
			return nil, err
		}
		out = append(out, r.b[start:r.off]...)
	}
	if !r.done() {
		return nil, errors.New("bytes after the names")
	}
	return out, nil
}
