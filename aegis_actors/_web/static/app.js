// The monitor's page: follows the fleet's event stream and draws the view the URL names.

import { configurationView, applicationView, applicationsView } from "./configs.js";
import { fill, h, setText } from "./dom.js";
import { fleetView } from "./fleet.js";
import { instanceView, serviceView } from "./details.js";
import { currentView, route, startRouter } from "./router.js";
import { applyAccess, connect, store, subscribe } from "./store.js";

function notFound(main) {
  fill(
    main,
    h("h1", { tabindex: "-1" }, "Page not found"),
    h("p", {}, "Nothing lives at this address. ", h("a", { href: "/" }, "Back to the fleet"), "."),
  );
  return { title: "Not found" };
}

route("/", fleetView);
route("/services/:name", serviceView);
route("/instances/:id", instanceView);
route("/configurations", applicationsView);
route("/configurations/:app", applicationView);
route("/configurations/:app/:config", configurationView);
route(".*", notFound);

const banner = document.getElementById("connection");
const live = document.getElementById("live");

function showConnection() {
  let message = "";
  if (store.stream === "lost" || store.stream === "closed") {
    message = "Lost the connection to the monitor. Reconnecting… (showing what was last received)";
  } else if (store.loaded && !store.status.connected) {
    message = "The monitor lost its connection to NATS. Reconnecting… (the view may be out of date)";
  } else if (store.loaded && !store.status.synced) {
    message = "Catching up with the registry…";
  }
  banner.hidden = !message;
  setText(banner, message);
  const ok = store.stream === "open" && store.status.connected && store.status.synced;
  setText(live, ok ? "Live" : store.stream === "connecting" ? "Connecting" : "Offline");
  live.className = ok ? "live on" : "live off";
}

subscribe((change) => {
  if (change.type === "stream" || change.type === "status" || change.type === "snapshot") showConnection();
  const view = currentView();
  if (view && view.update) view.update(change);
  if (change.type === "access" || change.type === "snapshot") applyAccess();
});

showConnection();
connect();
startRouter(document.getElementById("main"));
