// The weft filter SDK for AssemblyScript. Filters import it as "@weft/sdk" (the build maps
// that name here) and export phase functions; see docs/filter-sdk.md.
export { Continue, fail } from "./result";
export { Header } from "./headers";
export { Request, Response, request, response, attribute } from "./message";
export { respond } from "./reply";
export { config, configJson, configString, configNumber, configBool } from "./config";
export { Json, JsonKind } from "./json";
export { log } from "./log";
export { state, counter } from "./state";
export { metrics } from "./metrics";
export { now } from "./time";
export { jwt, Jws } from "./jwt";
export { parseIp, isIpv4, IpRange, inAnyRange } from "./net";
