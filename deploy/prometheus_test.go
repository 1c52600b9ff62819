package deploy

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// promtoolPath returns the path of Prometheus's promtool, failing the test when
// it is missing: the rules are part of what `make test` checks.
func promtoolPath(t *testing.T) string {
	t.Helper()
	path, err := exec.LookPath("promtool")
	if err != nil {
		t.Fatal("promtool is missing, so deploy/prometheus cannot be checked: install it with " +
			"`apt-get install prometheus` (Debian's package has /usr/bin/promtool), or put the promtool of a " +
			"Prometheus 2 or 3 release (https://prometheus.io/download/) on PATH")
	}
	return path
}

// The recording and alerting rules are valid, and every alert fires in
// its unit tests exactly where they expect it to.
func TestPrometheusRules(t *testing.T) {
	bin := promtoolPath(t)
	rules := promFiles(t, "prometheus/*.yml")
	tests := promFiles(t, "prometheus/tests/*.yml")
	for _, args := range [][]string{
		append([]string{"check", "rules"}, rules...),
		append([]string{"test", "rules"}, tests...),
	} {
		out, err := exec.Command(bin, args...).CombinedOutput()
		if err != nil {
			t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
}

// Every alert has unit tests where it fires and where it does not.
func TestEveryAlertIsTested(t *testing.T) {
	var alerts []string
	alertRE := regexp.MustCompile(`^\s*-\s*alert:\s*(\S+)\s*$`)
	for _, f := range promFiles(t, "prometheus/*.yml") {
		for _, line := range promFileLines(t, f) {
			if m := alertRE.FindStringSubmatch(line); m != nil {
				alerts = append(alerts, m[1])
			}
		}
	}
	if len(alerts) == 0 {
		t.Fatal("no alert in deploy/prometheus/*.yml")
	}
	fires, quiet := map[string]bool{}, map[string]bool{}
	nameRE := regexp.MustCompile(`^\s*-?\s*alertname:\s*(\S+)\s*$`)
	for _, f := range promFiles(t, "prometheus/tests/*.yml") {
		var current string
		ls := promFileLines(t, f)
		for i, line := range ls {
			if m := nameRE.FindStringSubmatch(line); m != nil {
				current = m[1]
			}
			switch field := strings.TrimSpace(line); {
			case field == "exp_alerts: []":
				quiet[current] = true
			case field == "exp_alerts:" && i+1 < len(ls) && strings.Contains(ls[i+1], "exp_labels:"):
				fires[current] = true
			}
		}
	}
	for _, a := range alerts {
		if !fires[a] {
			t.Errorf("alert %s has no test case where it fires", a)
		}
		if !quiet[a] {
			t.Errorf("alert %s has no test case where it stays quiet (exp_alerts: [])", a)
		}
	}
	for name := range fires {
		if !slices.Contains(alerts, name) {
			t.Errorf("the tests expect an alert %s, which no rule file defines", name)
		}
	}
}

func promFiles(t *testing.T, pattern string) []string {
	t.Helper()
	files, err := filepath.Glob(pattern)
	if err != nil || len(files) == 0 {
		t.Fatalf("no file matches %s (%v)", pattern, err)
	}
	return files
}

func promFileLines(t *testing.T, path string) []string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		out = append(out, sc.Text())
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}
