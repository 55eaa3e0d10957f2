// Schema validation of rendered Kubernetes manifests, offline, with the kubernetes-models
// package (the OpenAPI schemas of Kubernetes 1.x as JSON Schema, through ajv): types, enums,
// required fields and formats of every object of a built-in kind. Custom resources
// (ServiceMonitor, cert-manager Certificate) are left to check_manifest_fields.py.
//
//   NODE_PATH=<deploy-tools>/node_modules node validate_manifests.js FILE.yaml...
//
// Exit 0 when every document validates, 1 with one line per problem otherwise.
"use strict";
const fs = require("fs");
const yaml = require("js-yaml");

const custom = new Set(["monitoring.coreos.com/v1", "cert-manager.io/v1"]);
let problems = 0;
let checked = 0;
for (const file of process.argv.slice(2)) {
  const docs = yaml.loadAll(fs.readFileSync(file, "utf8")).filter((d) => d);
  for (const doc of docs) {
    const where = `${file}: ${doc.kind}/${doc.metadata && doc.metadata.name}`;
    if (!doc.apiVersion || !doc.kind) {
      console.log(`${where}: no apiVersion or kind`);
      problems++;
      continue;
    }
    if (custom.has(doc.apiVersion)) continue;
    let Model;
    try {
      Model = require(`kubernetes-models/${doc.apiVersion}/${doc.kind}`)[doc.kind];
    } catch (e) {
      console.log(`${where}: unknown apiVersion/kind ${doc.apiVersion} ${doc.kind}`);
      problems++;
      continue;
    }
    try {
      new Model(doc).validate();
      checked++;
    } catch (e) {
      console.log(`${where}: ${e.message}`);
      problems++;
    }
  }
}
console.log(`validate_manifests: ${checked} objects valid, ${problems} problems`);
process.exit(problems ? 1 : 0);
