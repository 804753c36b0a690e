// Per-project test timeouts (Jest reads `testTimeout` only at the top level): integration suites talk to
// real NATS/PostgreSQL, end-to-end suites start real processes. These are ceilings against hangs, not
// timing goals (those are in bench/).
const timeouts = { integration: 60_000, e2e: 300_000 };
jest.setTimeout(timeouts[globalThis.__FLEXMIG_PROJECT__] ?? 5_000);
