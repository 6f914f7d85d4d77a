package weftconformance

import (
	"bufio"
	"fmt"
	"io/fs"
	"os"
	"regexp"
	"sort"
	"strings"
	"testing"
	"testing/fstest"

	"sigs.k8s.io/gateway-api/conformance"
)

// An `image:` line of a container in the suite's YAML (all of them are written this way).
var imageLine = regexp.MustCompile(`(?m)^(\s*(?:-\s+)?image:\s*)(\S+)[ \t]*$`)

// readImages reads images.txt (test/k8s/build-conformance.sh writes it beside the OCI layout):
// `UPSTREAM_REPOSITORY LAYOUT_TAG NAME:TAG` per line. It returns each upstream repository's
// replacement, registry/NAME:TAG. The upstream tag is dropped on purpose: the manifests of one
// suite version name several tags of one image (echo-basic v1.5.1, v1.6.0-dev.2, ...), and the
// build makes one image from the suite's own source for all of them.
func readImages(path, registry string) (map[string]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	images := map[string]string{}
	lines := bufio.NewScanner(f)
	for n := 1; lines.Scan(); n++ {
		line := strings.TrimSpace(lines.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		fields := strings.Fields(line)
		if len(fields) != 3 {
			return nil, fmt.Errorf("%s:%d: want UPSTREAM_REPOSITORY LAYOUT_TAG NAME:TAG, got %q", path, n, line)
		}
		images[fields[0]] = strings.TrimSuffix(registry, "/") + "/" + fields[2]
	}
	if err := lines.Err(); err != nil {
		return nil, err
	}
	if len(images) == 0 {
		return nil, fmt.Errorf("%s lists no images", path)
	}
	return images, nil
}

// repository is an image reference without its tag or digest.
func repository(ref string) string {
	if at := strings.IndexByte(ref, '@'); at >= 0 {
		ref = ref[:at]
	}
	if colon := strings.LastIndexByte(ref, ':'); colon > strings.LastIndexByte(ref, '/') {
		ref = ref[:colon]
	}
	return ref
}

// rewriteImages copies every file of the suite's manifests with each image replaced. An image
// with no replacement is an error naming it: the node cannot pull from upstream registries, and
// a pod stuck in ImagePullBackOff would only show up as a timeout much later.
func rewriteImages(manifests fs.FS, images map[string]string) (fstest.MapFS, error) {
	out := fstest.MapFS{}
	missing := map[string][]string{}
	err := fs.WalkDir(manifests, ".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := fs.ReadFile(manifests, path)
		if err != nil {
			return err
		}
		if strings.HasSuffix(path, ".yaml") {
			data = imageLine.ReplaceAllFunc(data, func(line []byte) []byte {
				m := imageLine.FindSubmatch(line)
				ref := string(m[2])
				to, ok := images[repository(ref)]
				if !ok {
					missing[ref] = append(missing[ref], path)
					return line
				}
				return append(append([]byte{}, m[1]...), to...)
			})
		}
		out[path] = &fstest.MapFile{Data: data, Mode: 0o444}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if len(missing) > 0 {
		var names []string
		for ref, files := range missing {
			names = append(names, fmt.Sprintf("%s (%s)", ref, strings.Join(files, ", ")))
		}
		sort.Strings(names)
		return nil, fmt.Errorf("no rebuilt image for %s: build it in test/k8s/build-conformance.sh", strings.Join(names, "; "))
	}
	return out, nil
}

// The rewrite on the suite's real manifests, with no cluster: every image is replaced, nothing
// else changes, and a missing image is named.
func TestRewriteImages(t *testing.T) {
	dir := t.TempDir()
	file := dir + "/images.txt"
	list := "# upstream layout-tag name\n" +
		"registry.k8s.io/gateway-api/echo-basic echo-basic gateway-api/echo-basic:v1\n" +
		"registry.k8s.io/gateway-api/echo-advanced echo-advanced gateway-api/echo-advanced:v2\n" +
		"registry.k8s.io/coredns/coredns coredns coredns/coredns:v3\n"
	if err := os.WriteFile(file, []byte(list), 0o600); err != nil {
		t.Fatal(err)
	}
	images, err := readImages(file, "registry.weft.test")
	if err != nil {
		t.Fatal(err)
	}
	manifests, err := rewriteImages(&conformance.Manifests, images)
	if err != nil {
		t.Fatal(err)
	}
	mesh := string(manifests["mesh/manifests.yaml"].Data)
	if !strings.Contains(mesh, "image: registry.weft.test/gateway-api/echo-advanced:v2\n") || strings.Contains(mesh, "registry.k8s.io") {
		t.Errorf("mesh/manifests.yaml not rewritten:\n%s", mesh)
	}
	for path, f := range manifests {
		if strings.Contains(string(f.Data), "registry.k8s.io/") {
			t.Errorf("%s still names registry.k8s.io", path)
		}
		before, _ := fs.ReadFile(&conformance.Manifests, path)
		if got, want := imageLine.ReplaceAllString(string(f.Data), ""), imageLine.ReplaceAllString(string(before), ""); got != want {
			t.Errorf("%s changed beyond its image lines", path)
		}
	}

	delete(images, "registry.k8s.io/coredns/coredns")
	if _, err := rewriteImages(&conformance.Manifests, images); err == nil || !strings.Contains(err.Error(), "registry.k8s.io/coredns/coredns:v1.12.2 (base/manifests.yaml)") {
		t.Errorf("a missing image: got %v", err)
	}
}
