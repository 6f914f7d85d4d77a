// The control plane's name and ports, which the manifests, the sidecars, `weft dashboard` and
// the defaults of `weft control` agree on; a module of its own so that reading a command line
// does not load the manifests.
export const CONTROL_NAME = "weft-control";
export const API_PORT = 15012;
/** The dashboard's port, on the control plane pod's loopback only (weft dashboard port-forwards to it). */
export const DASHBOARD_PORT = 15014;
