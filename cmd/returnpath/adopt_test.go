package main

import (
	"errors"
	"net/netip"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/returnpath/returnpath/internal/client"
)

func TestReadHostsCSV(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		in        string
		wantHosts []client.AdoptHost
		wantLines []int
		wantErr   string // the error's start: file, line and column
	}{
		{name: "header, comment and blank lines", in: "name,address\n# rack 1\n\nweb1, 10.10.10.101\nweb2,10.10.10.102\n",
			wantHosts: []client.AdoptHost{{Name: "web1", Address: "10.10.10.101"}, {Name: "web2", Address: "10.10.10.102"}}, wantLines: []int{4, 5}},
		{name: "no header", in: "web1,10.10.10.101\n", wantHosts: []client.AdoptHost{{Name: "web1", Address: "10.10.10.101"}}, wantLines: []int{1}},
		{name: "bad address", in: "name,address\nweb1,10.10.10.101\nweb2,10.10.10.300\n", wantErr: "hosts.csv line 3, column 6:"},
		{name: "three fields", in: "web1,10.10.10.101\nweb2,10.10.10.102,extra\n", wantErr: "hosts.csv line 2, column 1:"},
		{name: "unclosed quote", in: "web1,10.10.10.101\n\"web2,10.10.10.102\n", wantErr: "hosts.csv line 2, column"},
		{name: "header only", in: "name,address\n", wantErr: "hosts.csv holds no hosts"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			hosts, lines, err := readHostsCSV(strings.NewReader(tt.in), "hosts.csv")
			if tt.wantErr != "" {
				if err == nil || !strings.HasPrefix(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want one starting %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(hosts, tt.wantHosts); diff != "" {
				t.Errorf("hosts (-got +want):\n%s", diff)
			}
			if diff := cmp.Diff(lines, tt.wantLines); diff != "" {
				t.Errorf("lines (-got +want):\n%s", diff)
			}
		})
	}
}

func TestCSVLineError(t *testing.T) {
	t.Parallel()
	p := &client.Problem{Status: 422, Code: client.CodeInvalid, Field: "hosts[1].address", Detail: "10.9.9.9 is outside segment rack1 (10.10.10.0/24)"}
	got := csvLineError(p, "hosts.csv", []int{2, 5})
	if want := "hosts.csv line 5, column 2 (address): 10.9.9.9 is outside segment rack1 (10.10.10.0/24)"; got.Error() != want {
		t.Errorf("csvLineError = %q, want %q", got, want)
	}
	other := &client.Problem{Status: 404, Code: client.CodeNotFound, Field: "name"}
	if got := csvLineError(other, "hosts.csv", []int{2}); !errors.Is(got, other) {
		t.Errorf("csvLineError(%v) = %v, want it unchanged", other, got)
	}
}

// FuzzReadHostsCSV: whatever the file holds, readHostsCSV never panics, and what it accepts
// is one line number per host, increasing, with every address an IP address.
func FuzzReadHostsCSV(f *testing.F) {
	f.Add("name,address\nweb1,10.10.10.101\n")
	f.Add("web1,10.10.10.101\n\"web2\",\"10.10.10.102\"\n")
	f.Add("a,b,c\n")
	f.Add("\"unclosed,10.0.0.1\n")
	f.Fuzz(func(t *testing.T, in string) {
		hosts, lines, err := readHostsCSV(strings.NewReader(in), "f.csv")
		if err != nil {
			if !strings.HasPrefix(err.Error(), "f.csv") {
				t.Errorf("error %q does not name the file", err)
			}
			return
		}
		if len(hosts) == 0 || len(hosts) != len(lines) {
			t.Fatalf("%d hosts, %d lines", len(hosts), len(lines))
		}
		for i, h := range hosts {
			if _, err := netip.ParseAddr(h.Address); err != nil {
				t.Errorf("accepted address %q: %v", h.Address, err)
			}
			if i > 0 && lines[i] <= lines[i-1] {
				t.Errorf("lines %v not increasing", lines)
			}
		}
	})
}
