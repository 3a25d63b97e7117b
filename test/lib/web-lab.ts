// The one-node lab the default-root tests share: two echo backends and a client pod on node1,
// a WeirNode (for its manifests dir, lab cgroup and traffic helpers; the tests start the daemon
// themselves), and a ClusterIP service `web` port 80 -> 8080 over both backends.

import { Lab, type LabNode, type Pod } from './lab.js';
import { endpointSlice, service, WeirNode } from './weir-node.js';

export interface WebLab {
  lab: Lab;
  node: LabNode;
  backends: Pod[];
  client: Pod;
  weir: WeirNode;
}

export async function webLab(name: string, clusterIP: string): Promise<WebLab> {
  const lab = await Lab.create({ name });
  const node = await lab.node('node1', { address: '198.18.0.1/24', podSubnet: '198.18.1.0/24' });
  const backends = [await lab.pod(node, 'be-a'), await lab.pod(node, 'be-b')];
  const client = await lab.pod(node, 'client');
  await Promise.all(backends.map((b) => b.ns.echoServer({ name: b.name, port: 8080 })));
  const weir = await WeirNode.create(lab, node);
  const ports = [{ name: 'http', port: 80, targetPort: 8080 }];
  weir.writeManifest('web.yaml', [
    service({ name: 'web', clusterIP, ports }),
    endpointSlice({ name: 'web-1', service: 'web', ports, endpoints: backends.map((b) => ({ ip: b.ip, node: 'n1' })) }),
  ]);
  return { lab, node, backends, client, weir };
}
