// nats-server for tests: the simulators' starter (src/sim/nats-server.ts), and whether the NATS tests can run here.
import { natsServerBinary } from '../../src/sim/nats-server.ts';

export { natsServerBinary, startNatsServer, type NatsServer } from '../../src/sim/nats-server.ts';

/**
 * Whether NATS tests can run. Outside CI a missing binary skips them with a message; in CI it is a
 * failure (.ci/run installs Debian's nats-server), so a broken install never passes as green.
 */
export function natsAvailable(): boolean {
  if (natsServerBinary()) return true;
  if (process.env.CI) throw new Error('nats-server is not installed, and CI must run the NATS tests (.ci/run installs it)');
  console.warn('skipping NATS tests: no nats-server binary (apt-get install nats-server, or set SEIGO_NATS_SERVER)');
  return false;
}
