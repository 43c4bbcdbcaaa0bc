package gnmitarget

import (
	"fmt"
	"sync"

	gpb "github.com/openconfig/gnmi/proto/gnmi"
	"github.com/openconfig/goyang/pkg/yang"
	"github.com/openconfig/ygot/uexampleoc"
	"github.com/openconfig/ygot/ygot"
	"github.com/openconfig/ygot/ytypes"

	"github.com/returnpath/returnpath/drivers/gnmi/gnmitarget/srl"
)

// Model is the YANG schema a Target holds its configuration in.
type Model struct {
	name     string
	schema   *ytypes.Schema
	models   []*gpb.ModelData
	newRoot  func() ygot.ValidatedGoStruct
	rootName string // key of the fake root in schema.SchemaTree
}

// Name returns the model's short name ("openconfig" or "nokia_srl").
func (m *Model) Name() string { return m.name }

func (m *Model) rootSchema() *yang.Entry { return m.schema.SchemaTree[m.rootName] }

// OpenConfig returns the uncompressed OpenConfig schema bundled with ygot (package
// uexampleoc), which includes openconfig-network-instance with its static routes. The
// model is read-only and shared by every caller.
func OpenConfig() (*Model, error) { return openConfigOnce() }

// SRLinux returns returnpath's subset of the Nokia SR Linux native model (network-instance,
// next-hop-groups, static-routes; see srl/yang), in which a route's next-hop-group is a
// leafref to a group of the same network-instance. The model is read-only and shared.
func SRLinux() (*Model, error) { return srLinuxOnce() }

// Unzipping a schema takes a good part of a second for OpenConfig: do it once.
var (
	openConfigOnce = sync.OnceValues(newOpenConfig)
	srLinuxOnce    = sync.OnceValues(newSRLinux)
)

func newOpenConfig() (*Model, error) {
	s, err := uexampleoc.Schema()
	if err != nil {
		return nil, fmt.Errorf("openconfig schema: %w", err)
	}
	return &Model{
		name:     "openconfig",
		schema:   s,
		rootName: "Device",
		newRoot:  func() ygot.ValidatedGoStruct { return &uexampleoc.Device{} },
		models: []*gpb.ModelData{
			{Name: "openconfig-network-instance", Organization: "OpenConfig working group"},
			{Name: "openconfig-local-routing", Organization: "OpenConfig working group"},
			{Name: "openconfig-policy-types", Organization: "OpenConfig working group"},
		},
	}, nil
}

func newSRLinux() (*Model, error) {
	s, err := srl.Schema()
	if err != nil {
		return nil, fmt.Errorf("sr linux schema: %w", err)
	}
	return &Model{
		name:     "nokia_srl",
		schema:   s,
		rootName: "Device",
		newRoot:  func() ygot.ValidatedGoStruct { return &srl.Device{} },
		models: []*gpb.ModelData{
			{Name: "srl_nokia-network-instance", Organization: "Nokia"},
			{Name: "srl_nokia-next-hop-groups", Organization: "Nokia"},
			{Name: "srl_nokia-static-routes", Organization: "Nokia"},
		},
	}, nil
}
