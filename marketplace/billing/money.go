package billing

import (
	"fmt"
	"math"
	"math/bits"
)

// Money is kept in integer minor units of an ISO 4217 currency (cents for
// USD, yen for JPY): never a float. Amounts are int64; every product is
// checked for overflow, and the few divisions (a price per many runs, a
// month prorated by day, a percentage) round once, half away from zero, at
// the end of a line (docs/billing.md, Rounding).

// currencies are the ISO 4217 codes accepted, with their minor unit
// exponents (how many digits after the point).
var currencies = map[string]int{
	"AED": 2, "AUD": 2, "BGN": 2, "BHD": 3, "BRL": 2, "CAD": 2, "CHF": 2, "CLP": 0, "CNY": 2, "COP": 2,
	"CZK": 2, "DKK": 2, "EGP": 2, "EUR": 2, "GBP": 2, "HKD": 2, "HUF": 2, "IDR": 2, "ILS": 2, "INR": 2,
	"ISK": 0, "JOD": 3, "JPY": 0, "KES": 2, "KRW": 0, "KWD": 3, "MXN": 2, "MYR": 2, "NGN": 2, "NOK": 2,
	"NZD": 2, "OMR": 3, "PHP": 2, "PLN": 2, "RON": 2, "SAR": 2, "SEK": 2, "SGD": 2, "THB": 2, "TND": 3,
	"TRY": 2, "TWD": 2, "UAH": 2, "USD": 2, "VND": 0, "ZAR": 2,
}

// CurrencyExponent is how many digits a currency has after the point; false
// for a code Relay does not bill in.
func CurrencyExponent(code string) (int, bool) {
	e, ok := currencies[code]
	return e, ok
}

// FormatAmount writes amount (minor units) in major units, "12.34 USD".
func FormatAmount(amount int64, currency string) string {
	e := currencies[currency]
	if e == 0 {
		return fmt.Sprintf("%d %s", amount, currency)
	}
	sign := ""
	u := uint64(amount)
	if amount < 0 {
		sign, u = "-", uint64(-amount) // -MinInt64 wraps to its own magnitude as uint64
	}
	div := uint64(math.Pow10(e))
	return fmt.Sprintf("%s%d.%0*d %s", sign, u/div, e, u%div, currency)
}

// errOverflow is an amount too large for int64 minor units.
var errOverflow = fmt.Errorf("billing: amount out of range")

// mulDivRound is a×b/d rounded half away from zero, for a, b ≥ 0 and
// d > 0, computed without losing bits; errOverflow when the result does
// not fit an int64.
func mulDivRound(a, b, d int64) (int64, error) {
	if a < 0 || b < 0 || d <= 0 {
		panic("billing: mulDivRound of a negative amount or a zero divisor")
	}
	hi, lo := bits.Mul64(uint64(a), uint64(b))
	if hi >= uint64(d) {
		return 0, errOverflow
	}
	q, r := bits.Div64(hi, lo, uint64(d))
	if q > math.MaxInt64 {
		return 0, errOverflow
	}
	// Half away from zero: up when the remainder is at least half of d.
	if r >= uint64(d)-r {
		q++
	}
	if q > math.MaxInt64 {
		return 0, errOverflow
	}
	return int64(q), nil
}

// addAmount is a+b, or errOverflow.
func addAmount(a, b int64) (int64, error) {
	s := a + b
	if (b > 0 && s < a) || (b < 0 && s > a) {
		return 0, errOverflow
	}
	return s, nil
}
