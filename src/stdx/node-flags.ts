/**
 * Flags for the Node.js process that runs `walletd serve`: `npm start`, `walletd bench` and the
 * test and benchmark harnesses start the server with them (package.json's start script is
 * checked against this list by a test). They can only be given on node's command line: V8 sizes
 * its heap when the process starts.
 *
 * --max-semi-space-size=64: a young generation of 64 MiB per semi-space instead of 16. Requests
 * allocate short-lived objects (parsed bodies, results) that survive a group commit's fsync;
 * with small semi-spaces they are copied and promoted, then collected by the slower old-
 * generation collector. Measured with bench:http, batch endpoint: 3.9 -> 3.6 µs of server CPU
 * per transfer (3 rounds each, same run). The young generation may then take 2 × 64 MiB instead of 2 × 16: at most 96 MiB more.
 */
export const SERVE_NODE_FLAGS: readonly string[] = ['--max-semi-space-size=64'];
