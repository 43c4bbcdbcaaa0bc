package webui

import (
	"bytes"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/returnpath/returnpath/internal/fabric"
	"github.com/returnpath/returnpath/internal/httpapi"
	"github.com/returnpath/returnpath/internal/verify"
)

// page is what every template gets.
type page struct {
	Title   string
	Nav     string // which navigation entry is current
	Actor   fabric.Actor
	CSRF    string
	Message string // a notice or an error for the user
	Problem bool   // Message is an error
	Live    string // the live-update stream's URL; "" for a page that does not refresh
	Refresh int    // seconds, for the <meta> refresh when scripts are off; 0 for none
	Data    any
}

func (p *page) CanReview() bool { return p.Actor.Role.Can(fabric.PermReview) }

var funcs = template.FuncMap{
	"ago":      ago,
	"stamp":    func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05 UTC") },
	"iso":      func(t time.Time) string { return t.UTC().Format(time.RFC3339) },
	"nonzero":  func(t time.Time) bool { return !t.IsZero() },
	"statusOf": func(s any) string { return strings.ReplaceAll(fmt.Sprint(s), "_", " ") },
}

func parsePages() (map[string]*template.Template, error) {
	pages := map[string]*template.Template{}
	for _, name := range []string{"login", "changes", "change", "fabric", "message"} {
		t, err := template.New("layout.html").Funcs(funcs).ParseFS(templateFS, "templates/layout.html", "templates/parts.html", "templates/"+name+".html")
		if err != nil {
			return nil, fmt.Errorf("template %s: %w", name, err)
		}
		pages[name] = t
	}
	return pages, nil
}

// render writes a page. The session, when there is one, fills the header and the CSRF token.
func (u *UI) render(w http.ResponseWriter, r *http.Request, code int, name string, p *page) {
	s := sessionOf(r.Context())
	p.Actor = s.Actor
	if s.CSRF != nil {
		p.CSRF = csrfToken(s)
	}
	var buf bytes.Buffer
	if err := u.pages[name].Execute(&buf, p); err != nil {
		u.log.ErrorContext(r.Context(), "review desk: render", "page", name, "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(code)
	_, _ = w.Write(buf.Bytes())
}

func ago(t time.Time) string {
	d := time.Since(t)
	switch {
	case d < time.Minute:
		return "just now"
	case d < time.Hour:
		return fmt.Sprintf("%d min ago", int(d/time.Minute))
	case d < 48*time.Hour:
		return fmt.Sprintf("%d h ago", int(d/time.Hour))
	}
	return fmt.Sprintf("%d days ago", int(d/(24*time.Hour)))
}

// urlQueryEscape escapes a value for a query string.
func urlQueryEscape(s string) string { return url.QueryEscape(s) }

// safeNext returns where to go after signing in: a desk page, never another site.
func safeNext(next string) string {
	if !strings.HasPrefix(next, Prefix+"/") || strings.HasPrefix(next, Prefix+"//") || strings.ContainsAny(next, "\\\r\n") {
		return Prefix + "/changes"
	}
	return next
}

// loginForm shows the sign-in form with a fresh double-submit value.
func (u *UI) loginForm(w http.ResponseWriter, r *http.Request) {
	u.showLogin(w, r, http.StatusOK, "")
}

func (u *UI) showLogin(w http.ResponseWriter, r *http.Request, code int, msg string) {
	v := randomHex(16)
	http.SetCookie(w, &http.Cookie{Name: loginCookie, Value: v, Path: Prefix + "/", HttpOnly: true, Secure: u.secure(r),
		SameSite: http.SameSiteStrictMode, MaxAge: 3600})
	p := &page{Title: "Sign in", Message: msg, Problem: msg != "", Data: loginData{Next: safeNext(r.FormValue("next")), Login: v,
		Proxy: u.cfg.Proxy != nil}}
	u.render(w, r, code, "login", p)
}

type loginData struct {
	Next  string
	Login string
	Proxy bool
}

// login checks the pasted token and starts a session: the cookie carries the session's id,
// never the token.
func (u *UI) login(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	if err := r.ParseForm(); err != nil {
		u.showLogin(w, r, http.StatusBadRequest, "The form could not be read.")
		return
	}
	c, err := r.Cookie(loginCookie)
	if crossSite(r) || err != nil || c.Value == "" || !equalConstant(c.Value, r.PostForm.Get("login")) {
		u.showLogin(w, r, http.StatusForbidden, "This sign-in form is out of date: try again.")
		return
	}
	secret := strings.TrimSpace(r.PostForm.Get("token"))
	if secret == "" {
		u.showLogin(w, r, http.StatusUnprocessableEntity, "Paste an API token to sign in.")
		return
	}
	a, err := u.store.Authenticate(r.Context(), secret)
	if err != nil {
		if fabric.ErrorCode(err) == fabric.EUNAUTHORIZED {
			u.showLogin(w, r, http.StatusUnauthorized, "That token is unknown or revoked.")
			return
		}
		u.fail(w, r, err)
		return
	}
	id, s, err := u.store.CreateUISession(r.Context(), a, false, u.cfg.SessionTTL)
	if err != nil {
		u.fail(w, r, err)
		return
	}
	u.clearCookie(w, r, loginCookie)
	u.setSessionCookie(w, r, id, s.ExpiresAt)
	http.Redirect(w, r, safeNext(r.PostForm.Get("next")), http.StatusSeeOther)
}

func (u *UI) logout(w http.ResponseWriter, r *http.Request) {
	s := sessionOf(r.Context())
	id, _ := r.Context().Value(ctxSessionID).(string)
	if err := u.store.DeleteUISession(r.Context(), s.Actor.Name, id); err != nil {
		u.fail(w, r, err)
		return
	}
	u.clearCookie(w, r, cookieName)
	http.Redirect(w, r, Prefix+"/login", http.StatusSeeOther)
}

// changeView is one change as the pages show it.
type changeView struct {
	fabric.Change
	Devices []deviceView
	Final   bool
}

// deviceView is one device's part of a change: its ops, in apply order, and its native text.
type deviceView struct {
	Name     string
	Platform fabric.Platform
	Stage    int
	Rollback bool
	Ops      []fabric.ChangeOp
	Lines    []line
	Text     string // the preview as plain text, for copying
}

func (u *UI) viewChange(c fabric.Change) changeView {
	inv := u.inv.Load()
	v := changeView{Change: c, Final: c.Status.Final()}
	for _, o := range c.Ops {
		n := len(v.Devices)
		if n == 0 || v.Devices[n-1].Name != o.Device || v.Devices[n-1].Stage != o.Stage || v.Devices[n-1].Rollback != o.Rollback {
			d := deviceView{Name: o.Device, Stage: o.Stage, Rollback: o.Rollback}
			if dev, ok := inv.Device(o.Device); ok {
				d.Platform = dev.Platform
			}
			v.Devices = append(v.Devices, d)
			n++
		}
		d := &v.Devices[n-1]
		d.Ops = append(d.Ops, o)
		if o.Preview != "" {
			if d.Text != "" {
				d.Text += "\n"
			}
			d.Text += o.Preview
		}
	}
	for i := range v.Devices {
		v.Devices[i].Lines = highlight(v.Devices[i].Platform, v.Devices[i].Text)
	}
	return v
}

// changesData is the changes page.
type changesData struct {
	Filter   fabric.ChangeFilter
	Statuses []fabric.ChangeStatus
	Segments []string
	Pending  []changeView // shown first when no status is chosen
	Recent   []changeView
	Next     string // the next page's query, "" on the last page
}

var allStatuses = []fabric.ChangeStatus{fabric.ChangePending, fabric.ChangeApproved, fabric.ChangeApplying, fabric.ChangeApplied,
	fabric.ChangeRejected, fabric.ChangeFailed, fabric.ChangeRolledBack}

// changesFilter reads the changes page's query, naming the parameter at fault.
func (u *UI) changesFilter(q url.Values) (fabric.ChangeFilter, error) {
	f := fabric.ChangeFilter{Status: fabric.ChangeStatus(q.Get("status")), Segment: q.Get("segment"), Host: q.Get("host"), Limit: 20}
	if f.Status != "" {
		if err := f.Status.Validate(); err != nil {
			return f, err
		}
	}
	if f.Segment != "" {
		if _, ok := u.inv.Load().Segment(f.Segment); !ok {
			return f, fabric.FieldErrorf(fabric.EINVALID, "segment", "no segment named %q", f.Segment)
		}
	}
	if len(f.Host) > 253 {
		return f, fabric.FieldErrorf(fabric.EINVALID, "host", "is longer than 253 characters")
	}
	if b := q.Get("before"); b != "" {
		n, err := strconv.ParseInt(b, 10, 64)
		if err != nil || n < 1 {
			return f, fabric.FieldErrorf(fabric.EINVALID, "before", "want a change id, got %q", b)
		}
		f.Before = n
	}
	return f, nil
}

// changesPage reads what the changes page shows: pending changes first (unless a status is
// chosen), then the recent ones a page at a time.
func (u *UI) changesPage(r *http.Request) (changesData, error) {
	f, err := u.changesFilter(r.URL.Query())
	if err != nil {
		return changesData{}, err
	}
	d := changesData{Filter: f, Statuses: allStatuses}
	for _, s := range u.inv.Load().Segments {
		d.Segments = append(d.Segments, s.Name)
	}
	ctx := r.Context()
	if f.Status == "" && f.Before == 0 {
		pf := f
		pf.Status, pf.Limit = fabric.ChangePending, 100
		pending, _, err := u.changes.List(ctx, pf)
		if err != nil {
			return d, err
		}
		for _, c := range pending {
			d.Pending = append(d.Pending, u.viewChange(c))
		}
	}
	list, next, err := u.changes.List(ctx, f)
	if err != nil {
		return d, err
	}
	for _, c := range list {
		if f.Status == "" && c.Status == fabric.ChangePending {
			continue // listed above
		}
		d.Recent = append(d.Recent, u.viewChange(c))
	}
	if next > 0 {
		q := url.Values{}
		for k, v := range map[string]string{"status": string(f.Status), "segment": f.Segment, "host": f.Host} {
			if v != "" {
				q.Set(k, v)
			}
		}
		q.Set("before", strconv.FormatInt(next, 10))
		d.Next = q.Encode()
	}
	return d, nil
}

func (u *UI) listChanges(w http.ResponseWriter, r *http.Request) {
	d, err := u.changesPage(r)
	if err != nil {
		u.fail(w, r, err)
		return
	}
	q := r.URL.Query()
	q.Set("view", "changes")
	q.Set("fp", fingerprintChanges(d))
	u.render(w, r, http.StatusOK, "changes", &page{Title: "Changes", Nav: "changes", Data: d, Live: Prefix + "/live?" + q.Encode(), Refresh: 15,
		Message: flash(r.URL.Query().Get("done"))})
}

// flash turns a fixed code from a redirect into its notice; anything else shows nothing.
func flash(code string) string {
	switch code {
	case "approved":
		return "Approved: the apply engine takes it from here."
	case "rejected":
		return "Rejected."
	case "retried":
		return "Retrying: the plan was recomputed and approved again."
	case "remediation":
		return "A remediation change was filed: review it below."
	}
	return ""
}

func changeIDParam(r *http.Request) (int64, error) {
	id, err := strconv.ParseInt(chi.URLParam(r, "id"), 10, 64)
	if err != nil || id < 1 {
		return 0, fabric.FieldErrorf(fabric.EINVALID, "id", "want a change id (a positive whole number), got %q", chi.URLParam(r, "id"))
	}
	return id, nil
}

// changeData is the change page.
type changeData struct {
	changeView
	// Stale is set when an approval was refused because the plan is not the one shown: the
	// page then shows the plan as it is now.
	Stale bool
}

func (u *UI) showChange(w http.ResponseWriter, r *http.Request) {
	id, err := changeIDParam(r)
	if err != nil {
		u.fail(w, r, err)
		return
	}
	c, err := u.changes.Change(r.Context(), id)
	if err != nil {
		u.fail(w, r, err)
		return
	}
	u.renderChange(w, r, http.StatusOK, c, flash(r.URL.Query().Get("done")), false, false)
}

func (u *UI) renderChange(w http.ResponseWriter, r *http.Request, code int, c fabric.Change, msg string, problem, stale bool) {
	p := &page{Title: fmt.Sprintf("Change %d", c.ID), Nav: "changes", Message: msg, Problem: problem,
		Data: changeData{changeView: u.viewChange(c), Stale: stale}}
	if !c.Status.Final() {
		q := url.Values{"view": {"change"}, "id": {strconv.FormatInt(c.ID, 10)}, "fp": {fingerprintChange(c)}}
		p.Live, p.Refresh = Prefix+"/live?"+q.Encode(), 10
	}
	u.render(w, r, code, "change", p)
}

// act runs approve, reject or retry and shows the outcome: back to the change on success, the
// service's refusal (four eyes, a stale plan, a wrong status) as a message on the change page.
func (u *UI) act(w http.ResponseWriter, r *http.Request, done string, do func(id int64) (fabric.Change, error)) {
	id, err := changeIDParam(r)
	if err != nil {
		u.fail(w, r, err)
		return
	}
	_, err = do(id)
	if err == nil {
		http.Redirect(w, r, fmt.Sprintf("%s/changes/%d?done=%s", Prefix, id, done), http.StatusSeeOther)
		return
	}
	var stale *fabric.StalePlanError
	if errors.As(err, &stale) {
		// Show the plan as it is stored now: for a plan that changed, the new one.
		c, rerr := u.changes.Change(r.Context(), id)
		if rerr != nil {
			u.fail(w, r, rerr)
			return
		}
		msg := "Not approved: " + stale.Message + "."
		if stale.Reason == fabric.PlanChanged {
			msg = "Not approved: the plan changed since this page showed it. The new plan is below; review it and approve again if it is right."
		}
		u.renderChange(w, r, http.StatusConflict, c, msg, true, true)
		return
	}
	code := fabric.ErrorCode(err)
	if code == fabric.EINTERNAL || code == fabric.EUNAVAILABLE || code == fabric.ENOTFOUND {
		u.fail(w, r, err)
		return
	}
	c, rerr := u.changes.Change(r.Context(), id)
	if rerr != nil {
		u.fail(w, r, rerr)
		return
	}
	u.renderChange(w, r, status(err), c, "Not done: "+fabric.ErrorMessage(err), true, false)
}

func (u *UI) approve(w http.ResponseWriter, r *http.Request) {
	a := sessionOf(r.Context()).Actor
	hash := r.PostForm.Get("plan_hash")
	u.act(w, r, "approved", func(id int64) (fabric.Change, error) {
		if hash == "" {
			return fabric.Change{}, fabric.FieldErrorf(fabric.EINVALID, "plan_hash", "is required: approve from the change's page")
		}
		return u.changes.Approve(r.Context(), a, id, hash)
	})
}

func (u *UI) reject(w http.ResponseWriter, r *http.Request) {
	a := sessionOf(r.Context()).Actor
	reason := strings.TrimSpace(r.PostForm.Get("reason"))
	u.act(w, r, "rejected", func(id int64) (fabric.Change, error) {
		switch {
		case reason == "":
			return fabric.Change{}, fabric.FieldErrorf(fabric.EINVALID, "reason", "a reason is required to reject a change")
		case len(reason) > 2000:
			return fabric.Change{}, fabric.FieldErrorf(fabric.EINVALID, "reason", "is %d characters long; at most 2000", len(reason))
		case strings.ContainsRune(reason, 0):
			return fabric.Change{}, fabric.FieldErrorf(fabric.EINVALID, "reason", "must not contain NUL characters")
		}
		return u.changes.Reject(r.Context(), a, id, reason)
	})
}

func (u *UI) retry(w http.ResponseWriter, r *http.Request) {
	a := sessionOf(r.Context()).Actor
	u.act(w, r, "retried", func(id int64) (fabric.Change, error) { return u.changes.Retry(r.Context(), a, id) })
}

// fabricData is the fabric page.
type fabricData struct {
	Query    string
	Segment  string
	Segments []string
	Pools    []poolView
	Hosts    []fabric.Host
	Scanned  int    // hosts looked at for the search
	Next     string // the next page's query
	Devices  []deviceReading
	Verify   string // why there are no readings, when there are none
}

type poolView struct {
	Name      string
	Prefix    string
	Allocated int64
	Size      uint64
	Percent   int
}

type deviceReading struct {
	verify.Device
	Platform fabric.Platform
	Drift    int
}

// hostSearchLimit bounds how many hosts one search reads.
const hostSearchLimit = 10000

func (u *UI) showFabric(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	inv := u.inv.Load()
	d := fabricData{Query: strings.TrimSpace(q.Get("q")), Segment: q.Get("segment")}
	for _, s := range inv.Segments {
		d.Segments = append(d.Segments, s.Name)
	}
	if d.Segment != "" {
		if _, ok := inv.Segment(d.Segment); !ok {
			u.fail(w, r, fabric.FieldErrorf(fabric.EINVALID, "segment", "no segment named %q", d.Segment))
			return
		}
	}
	if len(d.Query) > 253 {
		u.fail(w, r, fabric.FieldErrorf(fabric.EINVALID, "q", "is longer than 253 characters"))
		return
	}
	ctx := r.Context()
	usage, err := u.store.PoolUsage(ctx, inv)
	if err != nil {
		u.fail(w, r, err)
		return
	}
	for _, pu := range usage {
		pv := poolView{Name: pu.Pool.Name, Prefix: pu.Pool.Prefix.String(), Allocated: pu.Allocated, Size: pu.Pool.Size()}
		if pv.Size > 0 {
			pv.Percent = int(uint64(pu.Allocated) * 100 / pv.Size)
		}
		d.Pools = append(d.Pools, pv)
	}
	// Hosts: a page at a time; a search reads pages until it has a page of matches.
	f := fabric.HostFilter{Segment: d.Segment, After: q.Get("after"), Limit: 100}
	for {
		list, next, err := u.hosts.List(ctx, f)
		if err != nil {
			u.fail(w, r, err)
			return
		}
		d.Scanned += len(list)
		for _, h := range list {
			if d.Query == "" || hostMatches(h, d.Query) {
				d.Hosts = append(d.Hosts, h)
			}
		}
		if next == "" {
			break
		}
		if len(d.Hosts) >= 100 || d.Scanned >= hostSearchLimit {
			nq := url.Values{"after": {next}}
			for k, v := range map[string]string{"q": d.Query, "segment": d.Segment} {
				if v != "" {
					nq.Set(k, v)
				}
			}
			d.Next = nq.Encode()
			break
		}
		f.After = next
	}
	if u.verifier == nil {
		d.Verify = "Verification is not configured on this server."
	} else if rep, err := u.verifier.Verify(ctx, verify.Filter{Segment: d.Segment}); err != nil {
		d.Verify = "The devices could not be verified: " + fabric.ErrorMessage(err)
	} else {
		for _, dev := range rep.Devices {
			dr := deviceReading{Device: dev, Drift: dev.Routes()}
			if idev, ok := inv.Device(dev.Device); ok {
				dr.Platform = idev.Platform
			}
			d.Devices = append(d.Devices, dr)
		}
	}
	u.render(w, r, http.StatusOK, "fabric", &page{Title: "Fabric", Nav: "fabric", Data: d, Message: flash(q.Get("done"))})
}

func hostMatches(h fabric.Host, q string) bool {
	q = strings.ToLower(q)
	fields := []string{h.Name, h.Segment, string(h.State)}
	if h.Subnet.IsValid() {
		fields = append(fields, h.Address.String(), h.Subnet.String())
	}
	if h.Subnet6.IsValid() {
		fields = append(fields, h.Address6.String(), h.Subnet6.String())
	}
	for _, s := range fields {
		if strings.Contains(strings.ToLower(s), q) {
			return true
		}
	}
	return false
}

// remediate files the change that restores intent on a drifting device, planned from a fresh
// reading as the API's POST /v1/verify/remediate is.
func (u *UI) remediate(w http.ResponseWriter, r *http.Request) {
	device := r.PostForm.Get("device")
	if _, ok := u.inv.Load().Device(device); !ok {
		u.fail(w, r, fabric.FieldErrorf(fabric.EINVALID, "device", "no device named %q", device))
		return
	}
	if u.verifier == nil {
		u.fail(w, r, fabric.Errorf(fabric.EUNAVAILABLE, "verification is not configured on this server"))
		return
	}
	rep, err := u.verifier.Verify(r.Context(), verify.Filter{Device: device, Fresh: true})
	if err != nil {
		u.fail(w, r, err)
		return
	}
	c, err := u.changes.Remediate(r.Context(), sessionOf(r.Context()).Actor, httpapi.RemediationOps(rep))
	if err != nil {
		u.fail(w, r, err)
		return
	}
	http.Redirect(w, r, fmt.Sprintf("%s/changes/%d?done=remediation", Prefix, c.ID), http.StatusSeeOther)
}
