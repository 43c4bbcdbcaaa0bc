// Package packaging_test checks the files that ship returnpath (docker-compose.yml, the Debian
// package's systemd units) for what no build step checks: the compose file against the Compose
// Specification, and the settings the units must keep. `make image-check` and `make deb-check`
// check the built image and package.
package packaging_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/pb33f/jsonschema/v6"
	"go.yaml.in/yaml/v3"
)

// composeSchema compiles the Compose Specification's JSON schema, vendored in
// build/compose-spec.json (see build/README.md for where it comes from).
func composeSchema(t *testing.T) *jsonschema.Schema {
	t.Helper()
	f, err := os.Open("../build/compose-spec.json")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	doc, err := jsonschema.UnmarshalJSON(f)
	if err != nil {
		t.Fatal(err)
	}
	c := jsonschema.NewCompiler()
	if err := c.AddResource("compose_spec.json", doc); err != nil {
		t.Fatal(err)
	}
	sch, err := c.Compile("compose_spec.json")
	if err != nil {
		t.Fatal(err)
	}
	return sch
}

// yamlAsJSON reads YAML into the values encoding/json would produce, which is what the
// schema validates (the schema is JSON; Compose reads YAML 1.2 the same way).
func yamlAsJSON(t *testing.T, data []byte) any {
	t.Helper()
	var v any
	if err := yaml.Unmarshal(data, &v); err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	out, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestComposeSchema(t *testing.T) {
	t.Parallel()
	sch := composeSchema(t)
	data, err := os.ReadFile("../docker-compose.yml")
	if err != nil {
		t.Fatal(err)
	}
	if err := sch.Validate(yamlAsJSON(t, data)); err != nil {
		t.Errorf("docker-compose.yml does not follow the Compose Specification:\n%v", err)
	}
	// The schema must be able to fail: a key Compose does not know, a value it does not know.
	for _, bad := range []struct {
		name, from, to string
	}{
		{name: "unknown service key", from: "    restart: unless-stopped\n", to: "    restart: unless-stopped\n    colour: red\n"},
		{name: "unknown depends_on condition", from: "condition: service_healthy", to: "condition: healthy"},
	} {
		mutated := strings.Replace(string(data), bad.from, bad.to, 1)
		if mutated == string(data) {
			t.Errorf("%s: docker-compose.yml lacks %q", bad.name, bad.from)
			continue
		}
		if err := sch.Validate(yamlAsJSON(t, []byte(mutated))); err == nil {
			t.Errorf("%s: the schema accepts it", bad.name)
		}
	}
}

// compose is the part of docker-compose.yml the checks below read.
type compose struct {
	Services map[string]struct {
		Image       string            `yaml:"image"`
		Build       map[string]any    `yaml:"build"`
		Command     []string          `yaml:"command"`
		Environment map[string]string `yaml:"environment"`
		EnvFile     []struct {
			Path     string `yaml:"path"`
			Required bool   `yaml:"required"`
		} `yaml:"env_file"`
		Secrets     []string       `yaml:"secrets"`
		Volumes     []string       `yaml:"volumes"`
		Healthcheck map[string]any `yaml:"healthcheck"`
		DependsOn   map[string]struct {
			Condition string `yaml:"condition"`
		} `yaml:"depends_on"`
	} `yaml:"services"`
	Secrets map[string]struct {
		File string `yaml:"file"`
	} `yaml:"secrets"`
	Volumes map[string]any `yaml:"volumes"`
}

// TestComposeContent holds docker-compose.yml to what the README promises of it.
func TestComposeContent(t *testing.T) {
	t.Parallel()
	data, err := os.ReadFile("../docker-compose.yml")
	if err != nil {
		t.Fatal(err)
	}
	var c compose
	if err := yaml.Unmarshal(data, &c); err != nil {
		t.Fatal(err)
	}
	rp, db := c.Services["returnpath"], c.Services["db"]
	if rp.Build == nil || strings.Contains(rp.Image, "golang") || slices.Contains(rp.Command, "go") {
		t.Errorf("returnpath must build the image from the Dockerfile, not run from source: build %v, image %q, command %v", rp.Build, rp.Image, rp.Command)
	}
	if ctx, _ := rp.Build["context"].(string); ctx != "." {
		t.Errorf("returnpath's build context = %q, want . (the Dockerfile's COPY paths are relative to the repository)", ctx)
	}
	if db.Healthcheck == nil {
		t.Error("db has no healthcheck")
	}
	if rp.DependsOn["db"].Condition != "service_healthy" {
		t.Errorf("returnpath depends on db with condition %q, want service_healthy", rp.DependsOn["db"].Condition)
	}
	for _, svc := range []struct {
		name    string
		volumes []string
		target  string
	}{
		{name: "db", volumes: db.Volumes, target: "/var/lib/postgresql/data"},
		{name: "returnpath", volumes: rp.Volumes, target: "/var/lib/returnpath"},
	} {
		found := false
		for _, v := range svc.volumes {
			name, target, _ := strings.Cut(v, ":")
			if _, named := c.Volumes[name]; named && strings.TrimSuffix(target, "/") == svc.target {
				found = true
			}
		}
		if !found {
			t.Errorf("%s keeps %s in no named volume: %v", svc.name, svc.target, svc.volumes)
		}
	}
	// Secrets: none written into the file; the password comes from .env, device credentials
	// from Docker secrets or an env file.
	if pw := db.Environment["POSTGRES_PASSWORD"]; !strings.HasPrefix(pw, "${") {
		t.Errorf("POSTGRES_PASSWORD = %q, want it from the environment (${...})", pw)
	}
	if url := rp.Environment["RETURNPATH_DATABASE_URL"]; !strings.Contains(url, ":${RETURNPATH_DB_PASSWORD") {
		t.Errorf("RETURNPATH_DATABASE_URL = %q, want the password from the environment", url)
	}
	if len(rp.Secrets) == 0 {
		t.Error("returnpath reads no Docker secret")
	}
	for _, s := range rp.Secrets {
		if c.Secrets[s].File == "" {
			t.Errorf("secret %s has no file", s)
		}
	}
	if len(rp.EnvFile) == 0 || rp.EnvFile[0].Required {
		t.Errorf("returnpath's env_file = %+v, want an optional one", rp.EnvFile)
	}
}

// unit reads a systemd unit file into section -> key -> values (a key may repeat).
func unit(t *testing.T, name string) map[string]map[string][]string {
	t.Helper()
	f, err := os.Open(filepath.Join("deb", "systemd", name))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[string]map[string][]string{}
	section := ""
	sc := bufio.NewScanner(f)
	var cont string
	for sc.Scan() {
		line := cont + strings.TrimSpace(sc.Text())
		cont = ""
		if strings.HasSuffix(line, `\`) {
			cont = strings.TrimSuffix(line, `\`) + " "
			continue
		}
		switch {
		case line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, ";"):
		case strings.HasPrefix(line, "["):
			section = strings.Trim(line, "[]")
			out[section] = map[string][]string{}
		default:
			k, v, ok := strings.Cut(line, "=")
			if !ok || section == "" {
				t.Fatalf("%s: not key=value: %q", name, line)
			}
			out[section][k] = append(out[section][k], v)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestUnits holds the units to the settings the issue asks for; deb-check's systemd-analyze
// verify checks that systemd understands them.
func TestUnits(t *testing.T) {
	t.Parallel()
	tests := []struct {
		unit    string
		section string
		want    map[string]string // key -> its last value
	}{
		{unit: "returnpath.service", section: "Service", want: map[string]string{
			"User": "returnpath", "ExecStart": "/usr/bin/returnpath serve --config /etc/returnpath/returnpath.yaml",
			"ProtectSystem": "strict", "NoNewPrivileges": "yes", "PrivateTmp": "yes", "CapabilityBoundingSet": "",
			"AmbientCapabilities": "", "StateDirectory": "returnpath", "Restart": "on-failure",
			"ExecReload": "/bin/kill -HUP $MAINPID",
		}},
		{unit: "returnpath.service", section: "Install", want: map[string]string{"WantedBy": "multi-user.target"}},
		{unit: "returnpath-register.service", section: "Unit", want: map[string]string{
			"Before": "docker.service", "ConditionPathExists": "/etc/returnpath/bootstrap.env",
		}},
		{unit: "returnpath-register.service", section: "Service", want: map[string]string{
			"Type": "oneshot", "NoNewPrivileges": "yes", "ProtectSystem": "strict",
			"ExecStart": "/usr/bin/returnpath host register --name ${HOST_NAME} --address ${HOST_ADDRESS} --token-file /etc/returnpath/bootstrap.token --daemon-json /etc/docker/daemon.json --wait 120s",
		}},
		{unit: "returnpath-renew.service", section: "Service", want: map[string]string{
			"Type": "oneshot", "NoNewPrivileges": "yes", "ProtectSystem": "strict", "CapabilityBoundingSet": "",
			// No --daemon-json: a renewal must not change the bip under a running dockerd.
			"ExecStart": "/usr/bin/returnpath host renew --name ${HOST_NAME} --token-file /etc/returnpath/bootstrap.token",
		}},
		{unit: "returnpath-renew.timer", section: "Install", want: map[string]string{"WantedBy": "timers.target"}},
		// The probe needs dockerd's docker0: after docker.service, never before.
		{unit: "returnpath-probe.service", section: "Unit", want: map[string]string{
			"After": "network-online.target docker.service returnpath-register.service", "ConditionPathExists": "/etc/returnpath/bootstrap.env",
		}},
		{unit: "returnpath-probe.service", section: "Service", want: map[string]string{
			"Type": "oneshot", "NoNewPrivileges": "yes", "ProtectSystem": "strict", "CapabilityBoundingSet": "CAP_NET_RAW",
			"RestrictAddressFamilies": "AF_UNIX AF_INET AF_INET6 AF_NETLINK",
			"ExecStart":               "/usr/bin/returnpath host probe --name ${HOST_NAME} --target ${PROBE_TARGET} --token-file /etc/returnpath/bootstrap.token",
		}},
		{unit: "returnpath-probe.timer", section: "Timer", want: map[string]string{"OnUnitActiveSec": "5min"}},
		{unit: "returnpath-probe.timer", section: "Install", want: map[string]string{"WantedBy": "timers.target"}},
	}
	for _, tt := range tests {
		t.Run(tt.unit+"/"+tt.section, func(t *testing.T) {
			t.Parallel()
			u := unit(t, tt.unit)
			for k, want := range tt.want {
				vals, ok := u[tt.section][k]
				if !ok {
					t.Errorf("%s [%s] has no %s", tt.unit, tt.section, k)
					continue
				}
				if got := strings.Join(strings.Fields(vals[len(vals)-1]), " "); got != want {
					t.Errorf("%s [%s] %s=%q, want %q", tt.unit, tt.section, k, got, want)
				}
			}
		})
	}
}

// TestDockerfileStampsBuildInfo: the Dockerfile's from-source build (which this machine cannot
// run: no registry) passes the same -X flags as the Makefile, whose names
// internal/buildinfo's TestLinkerFlags checks.
func TestDockerfileStampsBuildInfo(t *testing.T) {
	t.Parallel()
	dockerfile, err := os.ReadFile("../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	makefile, err := os.ReadFile("../Makefile")
	if err != nil {
		t.Fatal(err)
	}
	const pkg = "github.com/returnpath/returnpath/internal/buildinfo"
	if !strings.Contains(string(makefile), "BUILDINFO = "+pkg+"\n") {
		t.Errorf("the Makefile's BUILDINFO is not %s", pkg)
	}
	for _, v := range []string{"version", "commit", "date"} {
		if flag := "-X " + pkg + "." + v + "="; !strings.Contains(string(dockerfile), flag) {
			t.Errorf("the Dockerfile's go build lacks %s", flag)
		}
		if flag := "-X $(BUILDINFO)." + v + "="; !strings.Contains(string(makefile), flag) {
			t.Errorf("the Makefile's LDFLAGS lack %s", flag)
		}
	}
}
