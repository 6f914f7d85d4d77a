package weftconformance

import (
	"flag"
	"fmt"
	"os"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/util/sets"
	"sigs.k8s.io/gateway-api/conformance/tests"
	"sigs.k8s.io/gateway-api/conformance/utils/suite"
)

var listProfiles = flag.String("weft.list-profiles", "MESH-HTTP,GATEWAY-HTTP", "the profiles TestList reports on")

// TestList prints, without a cluster, every test of the suite that concerns one of
// -weft.list-profiles, as TSV: name, what each profile makes of it, features, provisional,
// description. A profile's test is core (it needs only the profile's core features) or extended
// (it also needs some of the profile's extended features); outside means it needs the profile's
// core features and others the profile does not list (MeshFrontend needs
// HTTPRouteResponseHeaderModification, a Gateway feature): it runs where those are claimed, but
// the report counts it in no profile. docs/design/conformance.md's test list starts from this,
// so the list is the suite's own and not transcribed by hand.
func TestList(t *testing.T) {
	profiles := suite.ParseConformanceProfilesSlice(*listProfiles)
	byName := map[suite.ConformanceProfileName]suite.ConformanceProfile{
		suite.MeshHTTPConformanceProfileName:    suite.MeshHTTPConformanceProfile,
		suite.MeshGRPCConformanceProfileName:    suite.MeshGRPCConformanceProfile,
		suite.GatewayHTTPConformanceProfileName: suite.GatewayHTTPConformanceProfile,
		suite.GatewayGRPCConformanceProfileName: suite.GatewayGRPCConformanceProfile,
		suite.GatewayTLSConformanceProfileName:  suite.GatewayTLSConformanceProfile,
		suite.GatewayTCPConformanceProfileName:  suite.GatewayTCPConformanceProfile,
		suite.GatewayUDPConformanceProfileName:  suite.GatewayUDPConformanceProfile,
	}
	fmt.Fprintln(os.Stdout, "test\tprofiles\tfeatures\tprovisional\tdescription")
	for _, test := range tests.ConformanceTests {
		need := sets.New(test.Features...)
		var in []string
		for _, name := range profiles {
			p, ok := byName[name]
			if !ok {
				t.Fatalf("unknown profile %q", name)
			}
			switch {
			case p.CoreFeatures.IsSuperset(need):
				in = append(in, string(name)+":core")
			case p.CoreFeatures.Union(p.ExtendedFeatures).IsSuperset(need):
				in = append(in, string(name)+":extended")
			case need.IsSuperset(p.CoreFeatures):
				in = append(in, string(name)+":outside")
			}
		}
		if len(in) == 0 {
			continue
		}
		names := make([]string, len(test.Features))
		for i, f := range test.Features {
			names[i] = string(f)
		}
		fmt.Fprintf(os.Stdout, "%s\t%s\t%s\t%t\t%s\n", test.ShortName, strings.Join(in, ","), strings.Join(names, ","),
			test.Provisional, strings.Join(strings.Fields(test.Description), " "))
	}
}
