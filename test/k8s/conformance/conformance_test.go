// Package conformance runs the Gateway API conformance suite (sigs.k8s.io/gateway-api/conformance)
// against weft. TestConformance is the suite's own entry point (conformance.RunConformance) with
// one change: the suite's manifests name images in registries this machine cannot reach, so
// with -weft.images they are rewritten to the images test/k8s/build-conformance.sh builds from
// source and the test node's registry serves. Every upstream flag (-gateway-class,
// -conformance-profiles, -supported-features, -namespace-labels, -report-output, ...) works as
// documented upstream. See docs/design/conformance.md.
package weftconformance

import (
	"flag"
	"io/fs"
	"testing"

	"sigs.k8s.io/gateway-api/conformance"
)

var (
	imagesFile = flag.String("weft.images", "",
		"images.txt written by test/k8s/build-conformance.sh: each upstream image repository and the name it has in -weft.registry; "+
			"every image the manifests name must be listed")
	registry = flag.String("weft.registry", "registry.weft.test",
		"the registry the node pulls the rebuilt images from (test/k8s/node.ts: registry.weft.test)")
)

func TestConformance(t *testing.T) {
	opts := conformance.DefaultOptions(t)
	if *imagesFile != "" {
		images, err := readImages(*imagesFile, *registry)
		if err != nil {
			t.Fatal(err)
		}
		manifests, err := rewriteImages(&conformance.Manifests, images)
		if err != nil {
			t.Fatal(err)
		}
		opts.ManifestFS = []fs.FS{manifests}
	}
	conformance.RunConformanceWithOptions(t, opts)
}
