// @ts-check
// The gateway's dashboard: sign-in, the sections (overview, accounts, client keys, usage) and keeping them
// fresh, with its own small SVG charts. This entry module only starts the page; the modules beside it
// each own one thing: dom.js (building elements), format.js (numbers and times), api.js (the management
// API), charts.js (the SVG charts), page.js (sections, sign-in, status) and one module per section
// (overview.js, accounts.js, keys.js, usage.js, playground.js); i18n.js holds the page's words in
// English and Chinese (messages.*.json), and phrase.js puts data (labels, models, a host's words) into
// them as translate="no". The gateway serves exactly the files its route table lists (routes/web.py,
// PAGE_FILES), all under /static/ but index.html.
//
// Stable selectors (tests drive the page through these; keep them when restyling):
//   header     #version  #badge ("serving" | "not serving" | "log in again"; its title the summary)  #signout
//              #language (select: en | zh-CN; html[lang] follows it)
//              #tabs a[data-view=overview|accounts|keys|usage|playground]  (aria-current="page" on the open one)
//              #page-message (the gateway did not answer)
//   sign-in    #signin  #signin-form  input[name=signin-kind][value=key|password]  #signin-secret
//              #signin-message
//   sections   #view-overview  #view-accounts  #view-keys  #view-usage  (hidden unless open; the
//              address is /#accounts, /#keys, /#usage; the overview is plain /)
//   overview   #connect (hidden while serving)  #connect-providers button[data-provider=<profile>|iflow-login]
//              #account (dl)  #login-message  #login  #logout  #code-flow (details)  #code-start
//              #code-step  #code-link  #code-form  #code-input  #base-url  #curl  #python
//              #models (table)  #aliases-block  #aliases
//   accounts   #accounts-policy [data-testid=strategy] [data-testid=affinity]  #accounts-message
//              #accounts-table tbody tr[data-id][data-state][data-source]
//                [data-testid=account-state] (.state-<state>)  [data-testid=countdown][data-until]
//                [data-testid=account-reason]  button[data-action=enable|disable|reset|remove|login]
//              #account-form  #account-kind  #account-label  #account-base-url  #account-key
//              #account-models  #account-concurrency  #account-add-login  #account-code-flow
//   keys       #keys-hint  #keys-message  #keys-table tbody tr[data-id]  button[data-action=revoke]
//              #newkey-form  #newkey-name  #newkey-admin  #newkey-rpm  #newkey-tpd  #newkey-models
//              #newkey-dialog  #newkey-for  #newkey-value [data-testid=new-key]  #newkey-copy  #newkey-close
//   usage      #usage-range button[data-days=1|7|30][aria-pressed]  #usage-csv  #usage-message
//              #usage-totals [data-stat=requests|tokens|error-rate|latency|ttft] .value .sub
//              #usage-empty  #usage-charts  #chart-requests  #chart-tokens  #chart-models  #chart-keys
//              #chart-accounts  #chart-latency  #chart-dialects (each a figure holding one svg[role=img]
//              with <title>; one g.bar per bar, its <title> saying the bar's numbers)  #usage-recent
//   playground #play-form  #play-model (select)  #play-prompt  #play-send  #play-stop  #play-empty
//              #play-message  #play-output  #play-reasoning (details, folded)  #play-reasoning-text
//              #play-answer  #play-prompt-tokens  #play-completion-tokens  #play-ttft

import * as accounts from "./accounts.js";
import { onAdminRequired } from "./api.js";
import * as i18n from "./i18n.js";
import * as keys from "./keys.js";
import * as overview from "./overview.js";
import * as page from "./page.js";
import * as playground from "./playground.js";
import * as usage from "./usage.js";

const REFRESH_MS = 5000;

// The words first: every section renders in the chosen language from its first paint.
await i18n.start();
onAdminRequired(page.lock);
page.wireLanguage();
page.wireSignIn();
page.wireTabs();
overview.wire(page.refreshStatus, (name) => page.showView(name, true));
accounts.wire((name) => page.showView(name, true), page.refreshStatus);
keys.wire({ adminRequired: page.adminRequired, statusChanged: page.refreshStatus });
usage.wire();
playground.wire();
page.takeLoginResult();
page.refreshStatus();
setInterval(page.poll, REFRESH_MS);
setInterval(page.tick, 1000);
document.addEventListener("visibilitychange", page.poll);
