// Validates rendered Kubernetes objects offline:
//   node validate-objects.mjs RENDERED.yaml [OBJECTS.json]
// 1. every object against its Kubernetes schema (kubernetes-models: types, required fields,
//    formats), and strictly: a field its type does not declare is an error (the API server would
//    drop or refuse it; kubernetes-models alone lets it through);
// 2. CRDs by their own shape: Multus NetworkAttachmentDefinition (spec.config is a CNI JSON);
// 3. the references between objects: ConfigMaps, Secrets, ServiceAccounts, networks, scale
//    targets and selectors name objects and pods of the same render; probes, preStop and the
//    grace period fit the drain.
// With OBJECTS.json, the parsed objects are written there as a JSON array (for other checks).
// Tools come from EVOSIP_K8S_TOOLS (default ~/.cache/evosip-k8s-tools; deploy/helm/test/install-tools).
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { createRequire } from "node:module";

const tools = process.env.EVOSIP_K8S_TOOLS || path.join(os.homedir(), ".cache", "evosip-k8s-tools");
const modules = path.join(tools, "node_modules");
const require = createRequire(path.join(modules, "_"));
const YAML = require("yaml");

const errors = [];
const fail = (obj, msg) => errors.push(`${obj.kind}/${obj.metadata?.name ?? "?"}: ${msg}`);

// --- 1. schemas -------------------------------------------------------------------------
function modelDir(apiVersion) {
  const [group, version] = apiVersion.includes("/") ? apiVersion.split("/") : ["", apiVersion];
  return group ? path.join("kubernetes-models", group, version) : path.join("kubernetes-models", version);
}

// The declared fields of each TypeScript interface in kubernetes-models' .d.ts files.
const interfaces = new Map(); // file -> { fields: Map(name -> type text), imports: Map(alias -> file) }
function loadInterface(file) {
  if (interfaces.has(file)) return interfaces.get(file);
  const text = fs.readFileSync(file, "utf8");
  const imports = new Map();
  for (const m of text.matchAll(/^import \{ (\w+) \} from "([^"]+)";$/gm)) {
    const target = m[2].startsWith(".") ? path.resolve(path.dirname(file), m[2]) : path.join(modules, m[2]);
    imports.set(m[1], target + ".d.ts");
  }
  // Map types ({ [key: string]: T; }) span lines: one token each.
  const flat = text.replace(/\{\s*\[key: string\]:[^}]*\}/g, "MAP");
  const body = flat.match(/export interface \w+(?: extends [\w, ]+)? \{\n([\s\S]*?)\n\}/);
  const fields = new Map();
  if (body) {
    for (const m of body[1].matchAll(/^ {4}"([^"]+)"\??: (.+);$/gm)) fields.set(m[1], m[2]);
  }
  const entry = { fields, imports, hasBody: Boolean(body) };
  interfaces.set(file, entry);
  return entry;
}

function strict(obj, value, file, where) {
  const iface = loadInterface(file);
  if (!iface.hasBody || iface.fields.size === 0) return; // a scalar alias (Quantity, IntOrString, ...)
  if (value === null || typeof value !== "object" || Array.isArray(value)) return; // schema check reports it
  for (const [key, child] of Object.entries(value)) {
    const type = iface.fields.get(key);
    if (type === undefined) {
      fail(obj, `unknown field ${where}.${key}`);
      continue;
    }
    const array = type.match(/^Array<(\w+)>$/);
    const target = iface.imports.get(array ? array[1] : type);
    if (!target) continue; // string, number, map, literal union
    if (array) {
      if (Array.isArray(child)) child.forEach((item, i) => strict(obj, item, target, `${where}.${key}[${i}]`));
    } else {
      strict(obj, child, target, `${where}.${key}`);
    }
  }
}

function validateBuiltin(obj) {
  const dir = path.join(modules, modelDir(obj.apiVersion));
  const js = path.join(dir, `${obj.kind}.js`);
  if (!fs.existsSync(js)) {
    fail(obj, `no schema for ${obj.apiVersion} ${obj.kind}`);
    return;
  }
  const Kind = require(js)[obj.kind];
  try {
    new Kind(obj).validate();
  } catch (e) {
    fail(obj, `schema: ${e.message.split("\n").slice(0, 6).join(" | ")}`);
  }
  strict(obj, obj, path.join(dir, `${obj.kind}.d.ts`), "");
}

// --- 2. CRDs by their own shape -----------------------------------------------------------
const macvlanModes = new Set(["bridge", "private", "vepa", "passthru"]);
function validateNetworkAttachment(obj) {
  const allowedTop = new Set(["apiVersion", "kind", "metadata", "spec"]);
  for (const k of Object.keys(obj)) if (!allowedTop.has(k)) fail(obj, `unknown field .${k}`);
  if (!obj.metadata?.name) fail(obj, "metadata.name is required");
  const spec = obj.spec ?? {};
  for (const k of Object.keys(spec)) if (k !== "config") fail(obj, `unknown field .spec.${k}`);
  if (typeof spec.config !== "string") return fail(obj, "spec.config must be a JSON string");
  let cni;
  try {
    cni = JSON.parse(spec.config);
  } catch (e) {
    return fail(obj, `spec.config is not JSON: ${e.message}`);
  }
  for (const k of ["cniVersion", "name", "type"]) {
    if (typeof cni[k] !== "string" || !cni[k]) fail(obj, `spec.config.${k} must be a non-empty string`);
  }
  if (cni.type === "macvlan") {
    if (typeof cni.master !== "string" || !cni.master) fail(obj, "spec.config.master must name an interface");
    if (cni.mode !== undefined && !macvlanModes.has(cni.mode)) fail(obj, `spec.config.mode '${cni.mode}' is not a macvlan mode`);
    if (cni.mtu !== undefined && !(Number.isInteger(cni.mtu) && cni.mtu >= 576)) fail(obj, "spec.config.mtu must be an integer >= 576");
  }
  if (typeof cni.ipam !== "object" || cni.ipam === null || typeof cni.ipam.type !== "string") {
    fail(obj, "spec.config.ipam must be an object with a type");
  }
}

const custom = { "k8s.cni.cncf.io/v1/NetworkAttachmentDefinition": validateNetworkAttachment };

// --- 3. references and drain ----------------------------------------------------------------
const matches = (selector, labels) =>
  Object.entries(selector ?? {}).every(([k, v]) => labels?.[k] === v);

function checkReferences(objects) {
  const names = (kind) => new Set(objects.filter((o) => o.kind === kind).map((o) => o.metadata.name));
  const configMaps = names("ConfigMap");
  const secrets = names("Secret");
  const accounts = names("ServiceAccount");
  const networks = names("NetworkAttachmentDefinition");
  const workloads = objects.filter((o) => o.kind === "Deployment" || o.kind === "StatefulSet");
  const podLabels = workloads.map((w) => w.spec.template.metadata.labels);
  const externalSecret = process.env.EVOSIP_EXTERNAL_SECRET || "";

  for (const w of workloads) {
    const pod = w.spec.template.spec;
    if (!matches(w.spec.selector.matchLabels, w.spec.template.metadata.labels)) fail(w, "selector does not match its pod labels");
    if (pod.serviceAccountName && !accounts.has(pod.serviceAccountName)) fail(w, `service account ${pod.serviceAccountName} is not rendered`);
    for (const v of pod.volumes ?? []) {
      if (v.configMap && !configMaps.has(v.configMap.name)) fail(w, `ConfigMap ${v.configMap.name} is not rendered`);
      if (v.secret && !secrets.has(v.secret.secretName) && v.secret.secretName !== externalSecret) fail(w, `Secret ${v.secret.secretName} is not rendered`);
    }
    const nets = w.spec.template.metadata.annotations?.["k8s.v1.cni.cncf.io/networks"];
    for (const n of nets ? nets.split(",").map((s) => s.trim().split("@")[0]) : []) {
      if (!networks.has(n)) fail(w, `network ${n} is not rendered`);
    }
    for (const c of pod.containers) {
      const mounts = new Set((c.volumeMounts ?? []).map((m) => m.name));
      for (const m of mounts) if (!(pod.volumes ?? []).some((v) => v.name === m)) fail(w, `${c.name} mounts undefined volume ${m}`);
      for (const e of c.env ?? []) {
        const ref = e.valueFrom?.secretKeyRef;
        if (ref && !secrets.has(ref.name) && ref.name !== externalSecret) fail(w, `env ${e.name} names Secret ${ref.name}, not rendered`);
      }
      if (c.name !== "evosip") continue;
      checkEvosipContainer(w, pod, c);
    }
  }
  for (const s of objects.filter((o) => o.kind === "Service")) {
    if (!podLabels.some((l) => matches(s.spec.selector, l))) fail(s, "selects no rendered pod");
    for (const p of s.spec.ports) {
      if (!p.name) fail(s, `port ${p.port} has no name`);
    }
  }
  for (const h of objects.filter((o) => o.kind === "HorizontalPodAutoscaler")) {
    const t = h.spec.scaleTargetRef;
    if (!workloads.some((w) => w.kind === t.kind && w.metadata.name === t.name)) fail(h, `scale target ${t.kind}/${t.name} is not rendered`);
    if (h.spec.minReplicas > h.spec.maxReplicas) fail(h, "minReplicas > maxReplicas");
  }
  for (const p of objects.filter((o) => o.kind === "PodDisruptionBudget" || o.kind === "NetworkPolicy")) {
    const sel = p.kind === "NetworkPolicy" ? p.spec.podSelector.matchLabels : p.spec.selector.matchLabels;
    if (!podLabels.some((l) => matches(sel, l))) fail(p, "selects no rendered pod");
  }
  for (const b of objects.filter((o) => o.kind === "RoleBinding")) {
    if (!names("Role").has(b.roleRef.name)) fail(b, `role ${b.roleRef.name} is not rendered`);
    for (const s of b.subjects ?? []) if (s.kind === "ServiceAccount" && !accounts.has(s.name)) fail(b, `subject ${s.name} is not rendered`);
  }
}

// An evosip container: probes on its control port, a config argument it mounts, and a grace
// period longer than preStop + drain.
function checkEvosipContainer(w, pod, c) {
  const portNames = new Set((c.ports ?? []).map((p) => p.name));
  const probe = (p, want, what) => {
    if (!p?.httpGet) return fail(w, `${what} is not an HTTP probe`);
    if (p.httpGet.path !== want) fail(w, `${what} path ${p.httpGet.path}, want ${want}`);
    if (!portNames.has(p.httpGet.port)) fail(w, `${what} port ${p.httpGet.port} is not a named container port`);
  };
  probe(c.readinessProbe, "/readyz", "readinessProbe");
  probe(c.livenessProbe, "/healthz", "livenessProbe");
  if (!portNames.has("control")) fail(w, "no port named control");
  const config = c.args?.[c.args.indexOf("--config") + 1];
  if (!config || !(c.volumeMounts ?? []).some((m) => config.startsWith(m.mountPath + "/"))) fail(w, `config ${config} is not on a mounted volume`);
  const drain = Number((c.env ?? []).find((e) => e.name === "EVOSIP_DRAIN_TIMEOUT_S")?.value);
  if (!Number.isFinite(drain)) return fail(w, "no EVOSIP_DRAIN_TIMEOUT_S");
  const preStop = c.lifecycle?.preStop?.sleep?.seconds ?? 0;
  const grace = pod.terminationGracePeriodSeconds ?? 30;
  if (!(grace > preStop + drain)) fail(w, `terminationGracePeriodSeconds ${grace} does not exceed preStop ${preStop} s + drain ${drain} s`);
}

// --- main ------------------------------------------------------------------------------------
const file = process.argv[2];
if (!file) {
  console.error("usage: node validate-objects.mjs RENDERED.yaml [OBJECTS.json]");
  process.exit(2);
}
const objects = YAML.parseAllDocuments(fs.readFileSync(file, "utf8"))
  .map((d) => {
    if (d.errors.length) throw new Error(`${file}: ${d.errors[0].message}`);
    return d.toJS();
  })
  .filter((o) => o !== null);
if (process.argv[3]) fs.writeFileSync(process.argv[3], JSON.stringify(objects, null, 1));
const counts = {};
for (const obj of objects) {
  if (!obj.apiVersion || !obj.kind) {
    errors.push(`an object without apiVersion/kind: ${JSON.stringify(obj).slice(0, 80)}`);
    continue;
  }
  const check = custom[`${obj.apiVersion}/${obj.kind}`];
  if (check) check(obj);
  else validateBuiltin(obj);
  counts[obj.kind] = (counts[obj.kind] ?? 0) + 1;
}
checkReferences(objects.filter((o) => o.apiVersion && o.kind));
const summary = Object.entries(counts).map(([k, n]) => `${n} ${k}`).join(", ");
if (errors.length) {
  for (const e of errors) console.error(`  ${e}`);
  console.error(`${file}: ${errors.length} error(s) in ${objects.length} objects`);
  process.exit(1);
}
console.log(`${file}: ${objects.length} objects valid (${summary})`);
