#!/usr/bin/env node
/**
 * maskfleet. The run commands (status, report, retry, clean) and the queue browser (ui) load only
 * what they need, so they answer in well under a second and stay small; everything else loads the
 * whole command line.
 */

// The AWS SDK's notice that its 2027 releases need Node 22 is nine lines on stderr, in front of
// maskfleet's one-line errors; the README says which Node versions are supported.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= "true";

// An empty MASKFLEET_ variable (a compose `${VAR}` left unset, a ConfigMap's "") is unset, as it always was.
for (const [name, value] of Object.entries(process.env)) if (name.startsWith("MASKFLEET_") && value === "") delete process.env[name];

const runCommands = new Set(["status", "report", "retry", "clean", "ui"]);
await import(runCommands.has(process.argv[2] ?? "") ? "./runs-main.js" : "./program.js");
