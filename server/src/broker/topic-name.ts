import { InvalidRequestError } from "./errors.js";

/** Topic names: 1–249 of [A-Za-z0-9._-], never "." or "..". A name becomes a directory only after this check. */
const TOPIC_NAME = /^[A-Za-z0-9._-]{1,249}$/;

export function validateTopicName(name: string, what = "topic name"): void {
  if (name.length === 0)
    throw new InvalidRequestError(`${what} is empty; use 1-249 characters of [A-Za-z0-9._-]`);
  if (!TOPIC_NAME.test(name) || name === "." || name === "..") {
    const shown = JSON.stringify(name.length > 60 ? `${name.slice(0, 60)}…` : name);
    throw new InvalidRequestError(
      `invalid ${what} ${shown}: use 1-249 characters of [A-Za-z0-9._-], not "." or ".."`,
    );
  }
}

/** Group ids follow the topic-name rules (they appear in logs, metrics and file contents). */
export function validateGroupId(id: string): void {
  validateTopicName(id, "group id");
}
