"""REGISTER through edge -> router with credentials from the api: 1,000 subscribers created
through the REST API, 200 of them registered
by sipp with digest auth; Path stored; wrong password re-challenged; stale nonce;
nonce-count replay; password change through the API (auth.invalidate); API down -> 503;
Expires below min -> 423; Contact: * removes all bindings. Skips until `evosip router`
exists (see harness.require_role)."""

import time
import unittest

from harness import (HOST, ROUTER_DOMAIN, RawRegistration, RouterTestCase, SipClient,
                     create_subscribers, digest_authorization, digest_challenges, make_users,
                     pick_challenge, scrape, wait_until)

SUBSCRIBERS = 1000
SIPP_REGISTRATIONS = 200


class RouterRegister(RouterTestCase):
    def setUp(self):
        super().setUp()
        self.p = self.platform()
        self.users = make_users(5, prefix="reg")
        create_subscribers(self.p.api, self.users)
        # The api tells the router of each new subscriber (auth.invalidate, asynchronously); a
        # fetch in flight when such a call arrives is not cached. Let them land first.
        wait_until(lambda: self.p.router.metrics().get(
            "evosip_router_credential_invalidations_total") >= scrape(
            self.p.api.control_url + "/metrics").get("evosip_api_invalidations_sent_total"), 10, "the api's invalidations at the router")

    def client(self) -> SipClient:
        c = SipClient("UDP", self.p.edge.addr, timeout=4)
        self.addCleanup(c.close)
        return c

    def test_1000_subscribers_200_sipp_registrations(self):
        users = make_users(SUBSCRIBERS, prefix="bulk")
        t0 = time.monotonic()
        create_subscribers(self.p.api, users)
        self.assertLess(time.monotonic() - t0, 30, "creating 1,000 subscribers took too long")
        res = self.sipp_register(self.p.edge.addr, users[:SIPP_REGISTRATIONS], "bulk_register",
                                 rate=100)
        self.assertSippOk(res, SIPP_REGISTRATIONS)
        for user, _pw in (users[0], users[SIPP_REGISTRATIONS - 1]):
            bindings = self.lookup(self.p.router, user)
            self.assertEqual(len(bindings), 1, bindings)
            paths = " ".join(bindings[0].get("path", []))
            self.assertIn(f":{self.p.edge.sip_port}", paths,
                          f"binding of {user} without the edge's Path: {bindings}")
        self.assertEqual(self.lookup(self.p.router, users[SIPP_REGISTRATIONS][0]), [],
                         "a subscriber that never registered has a binding")
        m = self.p.router.metrics()
        self.assertGreaterEqual(m.get("evosip_router_registrations_total"), SIPP_REGISTRATIONS)
        self.assertGreaterEqual(m.get("evosip_router_auth_challenges_total"),
                                SIPP_REGISTRATIONS)
        self.assertAlive(self.p.router)

    def test_challenge_offers_md5_then_sha256_and_both_work(self):
        # MD5 first by default (router.auth_algorithms): sipp and many phones answer the first
        # challenge; both algorithms must verify.
        for alg, (user, pw) in (("SHA-256", self.users[0]), ("MD5", self.users[1])):
            with self.subTest(algorithm=alg):
                reg = RawRegistration(self.client(), user)
                first, final = reg.register(pw, algorithm=alg)
                self.assertIsNotNone(first, "no answer to REGISTER")
                self.assertEqual(first.status, 401, str(first))
                chs = digest_challenges(first)
                self.assertEqual([(c.get("algorithm") or "MD5").upper() for c in chs],
                                 ["MD5", "SHA-256"], str(first))
                for ch in chs:
                    self.assertEqual(ch["header"].lower(), "www-authenticate")
                    self.assertIn("auth", ch.get("qop", "").split(","), str(first))
                    self.assertEqual(ch.get("realm"), ROUTER_DOMAIN, str(first))
                self.assertIsNotNone(final, "no answer to the authenticated REGISTER")
                self.assertEqual(final.status, 200, str(final))
                bindings = self.lookup(self.p.router, user)
                self.assertEqual(len(bindings), 1, bindings)
                self.assertIn(f":{reg.c.local_port}", bindings[0]["contact"], bindings)
                self.assertTrue(bindings[0].get("path"), f"no Path stored: {bindings}")

    def test_wrong_password_is_challenged_again(self):
        user, pw = self.users[0]
        before = self.p.router.metrics().get("evosip_router_auth_failures_total")
        reg = RawRegistration(self.client(), user)
        first, final = reg.register(pw + "-wrong")
        self.assertEqual(first.status, 401, str(first))
        self.assertIsNotNone(final, "no answer to the REGISTER with a wrong password")
        self.assertEqual(final.status, 401, f"wrong password must be re-challenged:\n{final}")
        self.assertTrue(digest_challenges(final), str(final))
        self.assertEqual(self.lookup(self.p.router, user), [])
        self.assertGreater(self.p.router.metrics().get("evosip_router_auth_failures_total"),
                           before)
        # an unknown user gets the same answer (no user enumeration)
        first, final = RawRegistration(self.client(), "nosuchuser").register("whatever-1")
        self.assertEqual((first.status, final.status if final else None), (401, 401))

    def test_replayed_nonce_count_refused(self):
        user, pw = self.users[2]
        reg = RawRegistration(self.client(), user)
        first, final = reg.register(pw)
        self.assertEqual(final.status, 200, str(final))
        ch = pick_challenge(first, "SHA-256")
        replay = digest_authorization(ch, user, pw, "REGISTER", reg.ruri, nc=1)
        again = reg.send(authorization=replay)
        self.assertIsNotNone(again)
        self.assertEqual(again.status, 401, f"nc=1 used twice must be refused:\n{again}")
        nxt = reg.send(authorization=digest_authorization(ch, user, pw, "REGISTER", reg.ruri,
                                                         nc=2))
        self.assertEqual(nxt.status, 200, f"nc=2 on the same nonce must be accepted:\n{nxt}")

    def test_password_change_through_api(self):
        user, old = self.users[3]
        reg = RawRegistration(self.client(), user)
        self.assertEqual(reg.register(old)[1].status, 200)  # cached in the router now
        new = old + "-new"
        self.p.api.set_password(ROUTER_DOMAIN, user, new)
        # auth.invalidate is fire-and-forget from the api: allow it a moment
        deadline = time.monotonic() + 5
        status = None
        while time.monotonic() < deadline:
            status = RawRegistration(self.client(), user).register(old)[1].status
            if status == 401:
                break
            time.sleep(0.2)
        self.assertEqual(status, 401, "the old password still works after the change")
        self.assertEqual(RawRegistration(self.client(), user).register(new)[1].status, 200)

    def test_one_api_fetch_per_user_whichever_worker(self):
        # Each REGISTER has a new Call-ID, so they land on both router workers: the workers
        # share what the api answered instead of fetching the user once each.
        user, pw = self.users[1]
        for _ in range(8):
            self.assertEqual(RawRegistration(self.client(), user).register(pw)[1].status, 200)
        found = sum(v for labels, v in
                    self.p.router.metrics().series("evosip_router_api_fetches_total")
                    if labels.get("result") == "found")
        self.assertEqual(found, 1, "the router fetched the same credentials more than once")

    def test_api_down_gives_503_not_403(self):
        user, pw = self.users[4]  # never fetched by the router yet
        self.p.api.proc.stop()
        first, final = RawRegistration(self.client(), user).register(pw)
        self.assertEqual(first.status, 401, str(first))
        self.assertIsNotNone(final, "no answer while the api is down")
        self.assertEqual(final.status, 503, f"API unreachable must be 503:\n{final}")
        m = self.p.router.metrics()
        self.assertGreater(sum(v for labels, v in m.series("evosip_router_api_fetches_total")
                               if labels.get("result") not in ("ok", "found", "success")), 0,
                           m.series("evosip_router_api_fetches_total"))
        self.assertAlive(self.p.router)

    def test_expires_below_min_gets_423(self):
        user, pw = self.users[0]
        reg = RawRegistration(self.client(), user)
        resp = reg.send(expires=30)
        if resp is not None and resp.status == 401:
            ch = pick_challenge(resp, "SHA-256")
            resp = reg.send(expires=30, authorization=digest_authorization(
                ch, user, pw, "REGISTER", reg.ruri))
        self.assertIsNotNone(resp)
        self.assertEqual(resp.status, 423, str(resp))
        self.assertEqual(resp.get("Min-Expires"), "60", str(resp))
        self.assertEqual(self.lookup(self.p.router, user), [])

    def test_two_contacts_listed_then_star_removes_all(self):
        user, pw = self.users[1]
        c1, c2 = self.client(), self.client()
        r1 = RawRegistration(c1, user)
        self.assertEqual(r1.register(pw)[1].status, 200)
        r2 = RawRegistration(c2, user)
        _first, final = r2.register(pw)
        self.assertEqual(final.status, 200, str(final))
        contacts = " ".join(final.all("Contact"))
        for c in (c1, c2):
            self.assertIn(f":{c.local_port}", contacts, f"200 must list all bindings:\n{final}")
        self.assertEqual(len(self.lookup(self.p.router, user)), 2)
        # Contact: * with Expires: 0 (same Call-ID as r2, next CSeq)
        resp = r2.send(expires=0, contact="*")
        if resp is not None and resp.status == 401:
            ch = pick_challenge(resp, "SHA-256")
            resp = r2.send(expires=0, contact="*", authorization=digest_authorization(
                ch, user, pw, "REGISTER", r2.ruri))
        self.assertIsNotNone(resp)
        self.assertEqual(resp.status, 200, str(resp))
        wait_until(lambda: self.lookup(self.p.router, user) == [], 3, "bindings removed")


class RouterNonceLifetime(RouterTestCase):
    def test_stale_nonce_gets_stale_true(self):
        p = self.platform(router_overrides={"router": {"nonce_lifetime_s": 2}})
        user, pw = make_users(1, prefix="stale")[0]
        create_subscribers(p.api, [(user, pw)])
        with SipClient("UDP", p.edge.addr, timeout=4) as c:
            reg = RawRegistration(c, user)
            first, final = reg.register(pw)
            self.assertEqual(final.status, 200, str(final))
            time.sleep(2.6)  # > nonce_lifetime_s (nonce timestamps are in milliseconds)
            ch = pick_challenge(first, "SHA-256")
            resp = reg.send(authorization=digest_authorization(ch, user, pw, "REGISTER",
                                                               reg.ruri, nc=2))
            self.assertIsNotNone(resp)
            self.assertEqual(resp.status, 401, str(resp))
            self.assertTrue(any(x.get("stale", "").lower() == "true"
                                for x in digest_challenges(resp)),
                            f"expired nonce must be answered with stale=true:\n{resp}")
            fresh = pick_challenge(resp, "SHA-256")
            ok = reg.send(authorization=digest_authorization(fresh, user, pw, "REGISTER",
                                                             reg.ruri))
            self.assertEqual(ok.status, 200, f"the fresh nonce must work:\n{ok}")


class RouterRegisterApiOutage(RouterTestCase):
    """An api outage after the credentials' ttl: known subscribers keep registering with what
    the api last answered (router.credential_stale_s), strangers get 503."""

    def test_known_subscriber_registers_through_an_api_outage(self):
        p = self.platform(router_overrides={"router": {"credential_ttl_s": 1}})
        users = make_users(2, prefix="out")
        create_subscribers(p.api, users)
        (known, known_pw), (stranger, stranger_pw) = users
        client = SipClient("UDP", p.edge.addr, timeout=4)
        self.addCleanup(client.close)
        _, final = RawRegistration(client, known).register(known_pw)
        self.assertEqual(final.status, 200, str(final))
        p.api.proc.stop()
        time.sleep(1.2)  # past the ttl: the router must ask the api again, which is gone
        _, final = RawRegistration(client, known).register(known_pw)
        self.assertIsNotNone(final, "no answer while the api is down")
        self.assertEqual(final.status, 200, f"a known subscriber lost service:\n{final}")
        _, final = RawRegistration(client, known).register("wrong-" + known_pw)
        self.assertIn(final.status, (401, 403), f"stale credentials still check:\n{final}")
        _, final = RawRegistration(client, stranger).register(stranger_pw)
        self.assertEqual(final.status, 503, f"nothing known about a stranger:\n{final}")
        stale = p.router.metrics().get("evosip_router_credentials_stale_total")
        self.assertGreaterEqual(stale, 1)
        self.assertAlive(p.router)


if __name__ == "__main__":
    unittest.main()
