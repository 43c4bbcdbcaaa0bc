package main

import (
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// TestAlertRulesNameRealMetrics: every metric the example alert rules in docs/alerts.yml
// use is one the service exports (declared as a metric name in its source) and documented in
// docs/operations.md, so a renamed metric cannot leave the rules silently matching nothing.
// promtool checks the rules' syntax (scripts/check-alerts.sh, run by make lint).
func TestAlertRulesNameRealMetrics(t *testing.T) {
	b, err := os.ReadFile("../../docs/alerts.yml")
	if err != nil {
		t.Fatal(err)
	}
	var rules struct {
		Groups []struct {
			Rules []struct {
				Alert string `yaml:"alert"`
				Expr  string `yaml:"expr"`
			} `yaml:"rules"`
		} `yaml:"groups"`
	}
	if err := yaml.Unmarshal(b, &rules); err != nil {
		t.Fatal(err)
	}
	declared := map[string]bool{}
	nameRE := regexp.MustCompile(`"(returnpath_[a-z_]+)"`)
	err = filepath.WalkDir("../..", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == ".git" || d.Name() == "testdata") {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		src, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, m := range nameRE.FindAllStringSubmatch(string(src), -1) {
			declared[m[1]] = true
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	ops, err := os.ReadFile("../../docs/operations.md")
	if err != nil {
		t.Fatal(err)
	}
	useRE := regexp.MustCompile(`returnpath_[a-z_]+`)
	n := 0
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			n++
			for _, name := range useRE.FindAllString(r.Expr, -1) {
				base := name
				for _, suffix := range []string{"_bucket", "_count", "_sum"} {
					base = strings.TrimSuffix(base, suffix)
				}
				if !declared[base] {
					t.Errorf("alert %s uses %s, which no source file declares", r.Alert, name)
				}
				if !strings.Contains(string(ops), "`"+base) {
					t.Errorf("alert %s uses %s, which docs/operations.md does not list", r.Alert, base)
				}
			}
		}
	}
	if n == 0 {
		t.Fatal("docs/alerts.yml has no rules")
	}
}
