/**
 * Property tests run with a fixed seed so CI is reproducible; set FC_SEED to explore others
 * (FC_SEED=random picks a fresh one, printed by fast-check when a property fails).
 */
import fc from "fast-check";

const raw = process.env.FC_SEED ?? "20261126";
if (raw !== "random") fc.configureGlobal({ seed: Number(raw) });
