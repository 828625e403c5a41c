package conference

import (
	"fmt"
	"net/netip"
	"runtime/debug"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
)

// handledMethods are the methods mcc handles, as its Allow header names them.
var handledMethods = []sip.RequestMethod{sip.INVITE, sip.ACK, sip.CANCEL, sip.BYE, sip.OPTIONS, sip.SUBSCRIBE, sip.REFER}

// knownMethods are the methods counted under their own name in metrics;
// any other is counted as "other", so a stranger cannot grow the label set.
var knownMethods = map[sip.RequestMethod]bool{sip.INVITE: true, sip.ACK: true, sip.CANCEL: true, sip.BYE: true,
	sip.OPTIONS: true, sip.REGISTER: true, sip.SUBSCRIBE: true, sip.NOTIFY: true, sip.REFER: true, sip.MESSAGE: true,
	sip.INFO: true, sip.PRACK: true, sip.UPDATE: true, sip.PUBLISH: true}

func metricMethod(m sip.RequestMethod) sip.RequestMethod {
	if knownMethods[m] {
		return m
	}
	return "other"
}

// handlers returns mcc's request handlers by method, each behind the
// barrier; a method without one gets noRoute.
func (c *Controller) handlers() map[sip.RequestMethod]sipgo.RequestHandler {
	return map[sip.RequestMethod]sipgo.RequestHandler{
		sip.INVITE:    c.barrier(c.onInvite),
		sip.ACK:       c.barrier(c.onAck),
		sip.BYE:       c.barrier(c.onBye),
		sip.OPTIONS:   c.barrier(c.onOptions),
		sip.CANCEL:    c.barrier(c.onCancel),
		sip.SUBSCRIBE: c.barrier(c.onSubscribe),
		sip.REFER:     c.barrier(c.onRefer),
	}
}

// dispatch hands a request to its handler, as sipgo's server does.
func (c *Controller) dispatch(req *sip.Request, tx sip.ServerTransaction) {
	if h, ok := c.handlerMap[req.Method]; ok {
		h(req, tx)
		return
	}
	c.noRoute(req, tx)
}

// barrier runs a handler the way every request reaches mcc: counted, its
// transaction counted while alive (Limits.MaxTransactions), checked
// against RFC 3261 §8.1.1 once more (requests on connections mcc opened
// itself are not screened by the guard), and with any panic recovered:
// answered 500, logged with its stack and counted. The recovery is a last
// line, not a way to handle input.
func (c *Controller) barrier(h sipgo.RequestHandler) sipgo.RequestHandler {
	return func(req *sip.Request, tx sip.ServerTransaction) {
		c.metrics.request(metricMethod(req.Method))
		if tx != nil {
			c.guard.live.Add(1)
			if !tx.OnTerminate(func(string, error) { c.guard.live.Add(-1) }) {
				c.guard.live.Add(-1)
			}
		}
		ctx := &countingTx{ServerTransaction: tx, c: c, method: metricMethod(req.Method), req: req, start: time.Now()}
		defer func() {
			if r := recover(); r != nil {
				c.guard.count("panic", req.Method != sip.ACK)
				c.log.Error("panic in a SIP handler", "method", req.Method, "err", fmt.Sprint(r), "stack", string(debug.Stack()))
				if req.Method != sip.ACK && tx != nil {
					ctx.Respond(sip.NewResponseFromRequest(req, sip.StatusInternalServerError, "Server Internal Error", nil))
				}
			}
		}()
		r := checkRequest(req)
		if r == nil && !c.guard.screened(req) {
			// On a connection mcc opened: the guard's rules and the
			// source's rate apply here instead.
			src, _ := netip.ParseAddrPort(req.Source())
			if r = c.guard.take(src.Addr()); r == nil {
				r = c.guard.check(req, []byte(req.String()), nil)
			}
		}
		if r != nil {
			answered := r.Code != 0 && req.Method != sip.ACK && tx != nil
			c.guard.count(r.key, answered)
			if answered {
				ctx.Respond(r.response(req))
			}
			return
		}
		h(req, ctx)
	}
}

// noRoute answers a method mcc does not handle: 405 when it is a SIP
// method mcc knows (RFC 3261 §8.2.1), 501 otherwise (§21.5.2).
func (c *Controller) noRoute(req *sip.Request, tx sip.ServerTransaction) {
	c.barrier(func(req *sip.Request, tx sip.ServerTransaction) {
		if req.Method == sip.ACK {
			return
		}
		res := sip.NewResponseFromRequest(req, sip.StatusMethodNotAllowed, "Method Not Allowed", nil)
		if !knownMethods[req.Method] {
			res = sip.NewResponseFromRequest(req, sip.StatusNotImplemented, "Not Implemented", nil)
		}
		res.AppendHeader(sip.NewHeader("Allow", allowHeader))
		tx.Respond(res)
	})(req, tx)
}

// onCancel answers a CANCEL that matches no pending INVITE (those sipgo's
// transaction layer answers itself) with 481 (§9.2).
func (c *Controller) onCancel(req *sip.Request, tx sip.ServerTransaction) {
	respond(tx, req, sip.StatusCallTransactionDoesNotExists, "Call/Transaction Does Not Exist")
}

// recoverIn is the barrier for code sipgo calls outside a request
// handler, such as the handler of stray responses.
func (c *Controller) recoverIn(what string) {
	if r := recover(); r != nil {
		c.guard.count("panic", false)
		c.log.Error("panic in "+what, "err", fmt.Sprint(r), "stack", string(debug.Stack()))
	}
}
