// kget: an in-cluster HTTPS GET for the test node's busybox image (test/k8s/build-node.sh).
// Busybox's own TLS cannot talk to kube-apiserver (handshake failure: no cipher in common with
// Go's defaults), so this proves "a pod reaches the apiserver" the way a real client does: the
// ServiceAccount token and CA from /var/run/secrets/kubernetes.io/serviceaccount, the server
// certificate verified against that CA and its name.
//
//	kget [URL]   # default https://kubernetes.default.svc/version; prints the body, exit 0 on 2xx
package main

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"
)

const sa = "/var/run/secrets/kubernetes.io/serviceaccount/"

func main() {
	url := "https://kubernetes.default.svc/version"
	if len(os.Args) > 1 {
		url = os.Args[1]
	}
	ca, err := os.ReadFile(sa + "ca.crt")
	if err != nil {
		fail(err)
	}
	token, err := os.ReadFile(sa + "token")
	if err != nil {
		fail(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(ca) {
		fail(fmt.Errorf("no certificate in %sca.crt", sa))
	}
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		fail(err)
	}
	req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(token)))
	res, err := client.Do(req)
	if err != nil {
		fail(err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	os.Stdout.Write(body)
	if res.StatusCode/100 != 2 {
		fail(fmt.Errorf("%s: %s", url, res.Status))
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "kget:", err)
	os.Exit(1)
}
