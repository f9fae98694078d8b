import { Server } from "./listen.js";
import type { ServerOptions } from "./endpoint/server.js";
import { runShmWorker } from "./transports/shm-slots.js";

/** The shm transport's worker thread: serves the slots with a runtime Server (see transports/shm.ts). */
await runShmWorker((options) => new Server(options as ServerOptions | undefined));
