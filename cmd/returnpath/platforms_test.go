package main

import (
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/returnpath/returnpath/internal/fabric"
)

// TestEveryPlatformHasADriver: a platform the inventory accepts has a driver in the binary,
// and the API contract, the README and docs/platforms.md list exactly the platforms there are.
// A platform named without a driver would pass config check and fail at the first push.
func TestEveryPlatformHasADriver(t *testing.T) {
	factories := Factories()
	var names []string
	for p := range fabric.Platforms {
		names = append(names, string(p))
		f, ok := factories[p]
		if !ok || f.Open == nil || f.Preview == nil {
			t.Errorf("platform %s has no driver (Open and Preview) in Factories()", p)
		}
	}
	for p := range factories {
		if _, ok := fabric.Platforms[p]; !ok {
			t.Errorf("Factories() has a driver for %s, which the inventory does not accept", p)
		}
	}
	slices.Sort(names)

	spec, err := os.ReadFile("../../api/openapi.yaml")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`platform: \{type: string, enum: \[([^\]]*)\]\}`).FindSubmatch(spec)
	if m == nil {
		t.Fatal("api/openapi.yaml has no platform enum")
	}
	enum := strings.Split(strings.ReplaceAll(string(m[1]), " ", ""), ",")
	slices.Sort(enum)
	if !slices.Equal(enum, names) {
		t.Errorf("openapi platform enum = %v, want %v", enum, names)
	}
	for _, doc := range []string{"../../README.md", "../../docs/platforms.md"} {
		b, err := os.ReadFile(doc)
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range names {
			if !strings.Contains(string(b), n) {
				t.Errorf("%s does not mention platform %s", doc, n)
			}
		}
	}
}
