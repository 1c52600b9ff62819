package audit

import (
	"context"
	"testing"
)

// BenchmarkVerify verifies a workspace of 100,000 records per iteration.
func BenchmarkVerify(b *testing.B) {
	const records = 100_000
	s := newStore(records, "ws")
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if brk, err := Verify(ctx, s, "ws", nil); brk != nil || err != nil {
			b.Fatal(brk, err)
		}
	}
	b.ReportMetric(float64(records)*float64(b.N)/b.Elapsed().Seconds(), "records/s")
}
