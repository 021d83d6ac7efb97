"""The fulfilment service's part in the dev stack (`shopfloor run`): the warehouse floor
and the carriers, through this service's API only, and the pick queue for the progress
line. Only the dev stack imports this module (entry point `shopfloor.devstack`), so no
service image needs httpx for it.

- Pickers ("picker-01".. "picker-04") take the released and half-picked waves, oldest
  first, one wave per picker at a time, and scan each wave's open lines in walking order
  (`sequence`): one scan for a plain line, one per unit (qty 1, its serial) for a
  serialized one. Now and then (`Floor.wrong_scan`) a picker scans the wrong bin or the
  wrong item first; the service must refuse that (409), which counts as a wrong scan
  refused, not as a failure.
- Packers pack every shipment whose lines are all picked (cancelled lines left out): the
  rescan is the shipment's lines, the scale within `weight_spread` of its expected
  weight; now and then (`Floor.wrong_weight`) the scale is off by `wrong_weight_factor`,
  the service must refuse (409, flagged) and the parcel is weighed again next round.
- Carriers post tracking webhooks for each parcel dispatched: picked_up, in_transit,
  out_for_delivery, delivered, a few seconds apart (real time); a few parcels fail once
  ("failed") and go out for delivery again. The parcels on the road are kept in memory
  only: a run resumed later starts with none on the road.

Every loop sleeps between rounds, so an idle stack does not spin, and every failure goes
through `Http` (counted, never raised), so the floor keeps going while the service is
slow or restarting.
"""

from __future__ import annotations

import asyncio
import random
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
from shopfloor_devstack.parts import Http, Part, Probe, World

WAVES_TO_PICK = ("picking", "released")  # half-picked waves first, then the new ones
DELIVERY = ("picked_up", "in_transit", "out_for_delivery", "delivered")
FAILING_ONCE = (
    "picked_up",
    "in_transit",
    "out_for_delivery",
    "failed",
    "out_for_delivery",
    "delivered",
)
HUBS = ("hub Hannover", "hub Venlo", "hub Leipzig", "hub Utrecht", "hub Koeln")
ON_THE_ROAD = ("dispatched", "in_transit", "failed")  # shipment statuses with a carrier
NOTHING_TO_PACK = ("delivered", "pulled", "reallocated")


@dataclass(frozen=True)
class Floor:
    """How the simulated warehouse floor and carriers behave."""

    pickers: int = 4
    wrong_scan: float = 0.03  # scans that go to the wrong bin or item first
    wrong_weight: float = 0.02  # parcels the scale weighs wrong the first time
    weight_spread: float = 0.02  # how far a right weighing is off the expected weight
    wrong_weight_factor: float = 1.20
    failed_delivery: float = 0.05  # parcels whose first delivery round fails
    every_s: float = 1.0  # each loop's round: polling waves, packing, posting tracking
    min_scan_s: float = 0.02  # a picker's walk between two scans
    max_scan_s: float = 0.10
    min_hop_s: float = 2.0  # between two milestones of one parcel
    max_hop_s: float = 6.0
    page: int = 100  # waves per listing page
    max_pages: int = 20  # per status and round
    pack_rounds: int = 30  # rounds a shipment may fail to pack before it is given up
    track_tries: int = 10  # refused webhooks before a parcel is given up
    remember: int = 20_000  # shipments packed or given up, so they are not queued again


@dataclass
class Counts:
    scans: int = 0  # accepted
    wrong_scans: int = 0  # deliberately wrong, refused as they must be
    waves_picked: int = 0
    packed: int = 0
    wrong_weights: int = 0  # deliberately wrong, refused (and flagged) as they must be
    delivered: int = 0
    failed_deliveries: int = 0


@dataclass
class PackJob:
    weighed_wrong: bool = False  # the scale was off once already: the next try is right
    rounds: int = 0


@dataclass
class Parcel:
    shipment_id: str
    warehouse: str
    plan: tuple[str, ...]
    due: float  # loop time of the next milestone
    step: int = 0
    tries: int = 0


# -- what a picker, a packer and a carrier decide (pure) ---------------------------------


def open_lines(wave: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The wave's lines still to pick, in walking order: not cancelled, not all picked."""
    lines = [
        ln
        for ln in wave["pick_list"]
        if not ln.get("cancelled") and int(ln.get("picked", 0)) < int(ln["qty"])
    ]
    return sorted(lines, key=lambda ln: int(ln["sequence"]))


def complete_shipments(wave: Mapping[str, Any]) -> list[str]:
    """The wave's shipments whose lines are all picked (cancelled lines left out; a
    shipment with no line left is pulled, not complete)."""
    complete: dict[str, bool] = {}
    for ln in wave["pick_list"]:
        if ln.get("cancelled"):
            continue
        done = int(ln.get("picked", 0)) >= int(ln["qty"])
        complete[ln["shipment_id"]] = complete.get(ln["shipment_id"], True) and done
    return sorted(sid for sid, done in complete.items() if done)


def next_scan(line: Mapping[str, Any], picked_serials: Iterable[str] = ()) -> dict[str, Any] | None:
    """The next scan for an open line (without the picker): all of a plain line at once;
    one unit of a serialized line, by the first of its serials not known to be picked.
    None: every serial is picked and the line still open (the wave says otherwise)."""
    serials = list(line.get("serials") or [])
    scan: dict[str, Any] = {"bin": line["bin"], "sku": line["sku"]}
    if not serials:
        return {**scan, "qty": int(line["qty"]) - int(line.get("picked", 0))}
    # The wave says how many units are picked, not which: the picked serials are the
    # first ones (this floor scans them in order) unless a refusal said otherwise.
    done = set(picked_serials)
    left = [s for s in serials[int(line.get("picked", 0)) :] if s not in done]
    left += [s for s in serials if s not in done and s not in left]
    return {**scan, "qty": 1, "serial": left[0]} if left else None


def wrong_scan(
    rng: random.Random, wave: Mapping[str, Any], line: Mapping[str, Any], skus: Sequence[str]
) -> tuple[dict[str, Any], str]:
    """A scan the service must refuse, and what is wrong with it: an item on none of the
    wave's lines (cancelled ones aside), or a bin that holds the line's SKU for none."""
    live = [ln for ln in wave["pick_list"] if not ln.get("cancelled")]
    on_list = {ln["sku"] for ln in live}
    scan = {"bin": line["bin"], "sku": line["sku"], "qty": 1}
    others = sorted(set(skus) - on_list)
    if others and rng.random() < 0.5:
        return {**scan, "sku": rng.choice(others)}, "wrong item"
    bins = {ln["bin"] for ln in live if ln["sku"] == line["sku"]}
    wrong = {**scan, "bin": _another_bin(line["bin"], bins, rng)}
    right = next_scan(line)
    if right is not None and "serial" in right:
        wrong["serial"] = right["serial"]  # the right unit, scanned at the wrong bin
    return wrong, "wrong bin"


def _another_bin(bin_code: str, taken: set[str], rng: random.Random) -> str:
    """A bin next to `bin_code` (same zone, another aisle or slot) not in `taken`."""
    zone = bin_code.split("-")[0]
    while True:
        candidate = f"{zone}-{rng.randint(1, 40):02d}-{rng.randint(1, 9)}"
        if candidate not in taken and candidate != bin_code:
            return candidate


def pack_request(
    rng: random.Random, shipment: Mapping[str, Any], floor: Floor, wrong: bool
) -> dict[str, Any]:
    """What the packing station sends: the rescan (the shipment's lines) and the scale's
    reading, within `weight_spread` of the expected weight, or off by the wrong factor."""
    expected = int(shipment["weight_grams"])
    factor = floor.wrong_weight_factor if wrong else rng.uniform(-1, 1) * floor.weight_spread + 1
    items = [
        {"sku": ln["sku"], "qty": int(ln["qty"]), "serials": list(ln.get("serials") or [])}
        for ln in shipment["lines"]
    ]
    return {"weight_grams": max(round(expected * factor), 1), "items": items}


def delivery_plan(rng: random.Random, floor: Floor) -> tuple[str, ...]:
    return FAILING_ONCE if rng.random() < floor.failed_delivery else DELIVERY


def place(milestone: str, warehouse: str, rng: random.Random) -> str:
    if milestone == "picked_up":
        return f"{warehouse} dock"
    if milestone == "in_transit":
        return rng.choice(HUBS)
    return "local delivery depot"


def _detail(response: httpx.Response) -> str:
    try:
        detail = response.json().get("detail")
    except (ValueError, AttributeError):
        return response.text[:200]
    return detail if isinstance(detail, str) else str(detail)[:200]


# -- the floor ----------------------------------------------------------------------------


class WarehouseFloor:
    preparing = ""

    def __init__(self, world: World, http: Http, floor: Floor | None = None) -> None:
        self.world, self.http, self.floor = world, http, floor or Floor()
        self.counts = Counts()
        self._rng = random.Random(world.seed)  # noqa: S311 - traffic, not secrets
        self._waves: asyncio.Queue[str] = asyncio.Queue()
        self._claimed: set[str] = set()  # queued or being picked
        self._finished: set[str] = set()  # picked or cancelled; the listing may lag
        self._serials: dict[str, set[str]] = {}  # wave -> serials refused as picked already
        self._to_pack: dict[str, PackJob] = {}
        self._handled: OrderedDict[str, None] = OrderedDict()  # packed or given up
        self._road: dict[str, Parcel] = {}

    @property
    def pickers(self) -> list[str]:
        return [f"picker-{n:02d}" for n in range(1, self.floor.pickers + 1)]

    @property
    def doing(self) -> str:
        return f"picking with {self.floor.pickers} pickers, packing and delivering"

    async def prepare(self) -> None:
        return None

    async def run(self) -> None:
        async with asyncio.TaskGroup() as floor:
            floor.create_task(self._rounds("list waves", self._find_waves))
            for picker in self.pickers:
                floor.create_task(self._pick_forever(picker))
            floor.create_task(self._rounds("pack", self._pack_round))
            floor.create_task(self._rounds("track", self._carry_round))

    def progress(self) -> str:
        c = self.counts
        return (
            f"{c.waves_picked} waves picked, {c.packed} packed, {c.delivered} delivered, "
            f"{c.wrong_scans} wrong scans and {c.wrong_weights} wrong weights refused"
        )

    def summary(self) -> str:
        c = self.counts
        return (
            f"picked {c.waves_picked} waves ({c.scans} scans), packed {c.packed} parcels, "
            f"delivered {c.delivered} ({c.failed_deliveries} failed attempts), refused "
            f"{c.wrong_scans} wrong scans and {c.wrong_weights} wrong weights"
        )

    async def _rounds(self, what: str, act: Callable[[], Awaitable[None]]) -> None:
        while True:
            await asyncio.sleep(self.floor.every_s)
            try:
                await act()
            except (KeyError, TypeError, ValueError, IndexError) as error:  # another shape
                self.http.failures.add(f"{what} -> {type(error).__name__}: {error}")

    # -- pickers ------------------------------------------------------------------------

    async def _find_waves(self) -> None:
        """Queue every wave to pick that no picker has, oldest first."""
        listed: list[dict[str, Any]] = []
        for status in WAVES_TO_PICK:
            listed += await self._list_waves(status)
        ids = {str(w["wave_id"]) for w in listed}
        self._finished &= ids  # once the listing caught up, they drop out of it
        for wave in sorted(listed, key=lambda w: (str(w["released_at"]), str(w["wave_id"]))):
            wid = str(wave["wave_id"])
            if wid not in self._claimed and wid not in self._finished:
                self._claimed.add(wid)
                self._waves.put_nowait(wid)

    async def _list_waves(self, status: str) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        page = self.floor.page
        for n in range(self.floor.max_pages):
            params = {"status": status, "limit": page, "offset": n * page}
            rows = await self.http.call("list waves", "GET", "/waves", params=params)
            if rows is None:
                break
            found += rows
            if len(rows) < page:
                break
        return found

    async def _pick_forever(self, picker: str) -> None:
        while True:
            wid = await self._waves.get()
            try:
                await self._pick_wave(picker, wid)
            except (KeyError, TypeError, ValueError, IndexError) as error:
                self.http.failures.add(f"pick wave {wid} -> {type(error).__name__}: {error}")
            finally:
                self._claimed.discard(wid)

    async def _pick_wave(self, picker: str, wid: str) -> None:
        """Walk the wave's open lines in order until none is left, or a scan could not be
        made (the wave is listed again, and picked on, in a later round)."""
        wave = await self.http.call("look up wave", "GET", f"/waves/{wid}")
        scanned = False
        while wave is not None:
            self._queue_packing(wave)
            lines = open_lines(wave)
            if not lines:
                if wave["status"] in ("picked", "cancelled"):
                    self._finished.add(wid)
                    self._serials.pop(wid, None)
                    if scanned and wave["status"] == "picked":
                        self.counts.waves_picked += 1
                return
            await asyncio.sleep(self._rng.uniform(self.floor.min_scan_s, self.floor.max_scan_s))
            if self._rng.random() < self.floor.wrong_scan:
                await self._scan_wrong(picker, wave, lines[0])
            after = await self._scan(picker, wave, lines[0])
            scanned = scanned or after is not None
            wave = after

    async def _scan(
        self, picker: str, wave: dict[str, Any], line: dict[str, Any]
    ) -> dict[str, Any] | None:
        """One right scan; the wave as it is after it, or None to stop for this round."""
        wid = str(wave["wave_id"])
        scan = next_scan(line, self._serials.get(wid, ()))
        if scan is None:
            self.http.failures.add(f"wave {wid} line {line['sequence']}: no serial left to scan")
            return None
        path = f"/waves/{wid}/picks"
        response = await self.http.send("POST", path, json={"picker": picker, **scan})
        if response is not None and response.status_code == 409:
            return await self._after_refusal(wid, line, scan, _detail(response))
        after = self.http.json("pick", response)
        if after is not None:
            self.counts.scans += 1
        return after

    async def _after_refusal(
        self, wid: str, line: dict[str, Any], scan: dict[str, Any], reason: str
    ) -> dict[str, Any] | None:
        """A right scan refused: fine if the wave changed meanwhile (the order was
        cancelled, the serial picked already); a failure if it did not."""
        if "serial" in scan and "picked already" in reason:
            self._serials.setdefault(wid, set()).add(scan["serial"])
            return await self.http.call("look up wave", "GET", f"/waves/{wid}")
        wave = await self.http.call("look up wave", "GET", f"/waves/{wid}")
        if wave is None:
            return None
        same = [ln for ln in open_lines(wave) if ln["sequence"] == line["sequence"]]
        if same and same[0].get("picked") == line.get("picked"):
            self.http.failures.add(f"pick {scan} on wave {wid} -> HTTP 409: {reason}")
            return None
        return wave

    async def _scan_wrong(self, picker: str, wave: dict[str, Any], line: dict[str, Any]) -> None:
        scan, what = wrong_scan(self._rng, wave, line, sorted(self.world.catalogue))
        path = f"/waves/{wave['wave_id']}/picks"
        response = await self.http.send("POST", path, json={"picker": picker, **scan})
        if response is None:
            return
        if response.status_code == 409:
            self.counts.wrong_scans += 1
        elif response.is_success:
            self.http.failures.add(f"{what} {scan} on wave {wave['wave_id']} was accepted")
        else:
            self.http.json(f"{what} scan", response)  # counted as what it is

    # -- packers ------------------------------------------------------------------------

    def _queue_packing(self, wave: dict[str, Any]) -> None:
        for sid in complete_shipments(wave):
            if sid not in self._to_pack and sid not in self._handled:
                self._to_pack[sid] = PackJob()

    def _handled_now(self, sid: str) -> None:
        self._to_pack.pop(sid, None)
        self._handled[sid] = None
        while len(self._handled) > self.floor.remember:
            self._handled.popitem(last=False)

    async def _pack_round(self) -> None:
        for sid, job in list(self._to_pack.items()):
            job.rounds += 1
            await self._pack(sid, job)
            if sid in self._to_pack and job.rounds >= self.floor.pack_rounds:
                self.http.failures.add(f"shipment {sid}: not packed in {job.rounds} rounds")
                self._handled_now(sid)

    async def _pack(self, sid: str, job: PackJob) -> None:
        shipment = await self.http.call("look up shipment", "GET", f"/shipments/{sid}")
        if shipment is None:
            return  # counted; tried again next round
        status = shipment["status"]
        if status in ON_THE_ROAD or status in NOTHING_TO_PACK:
            # Packed before (by an earlier run), or pulled: nothing for this packer.
            self._handled_now(sid)
            return
        if status != "picked":
            return  # not yet: the pick that completed it may still be on its way
        wrong = not job.weighed_wrong and self._rng.random() < self.floor.wrong_weight
        body = pack_request(self._rng, shipment, self.floor, wrong)
        response = await self.http.send("POST", f"/shipments/{sid}/pack", json=body)
        if response is None:
            return
        if wrong:
            job.weighed_wrong = True
            if response.status_code == 409:
                self.counts.wrong_weights += 1
                return  # flagged; weighed again, right, next round
            if response.is_success:
                self.http.failures.add(f"shipment {sid}: a wrong weight was accepted")
        if response.status_code == 409:
            reason = _detail(response)
            if "no recipient" in reason:
                return  # the recipient is on its way from the order service: next round
            self.http.failures.add(f"pack {sid} -> HTTP 409: {reason}")
            self._handled_now(sid)  # a supervisor's case now, not the packer's
            return
        packed = self.http.json("pack", response)
        if packed is not None:
            self.counts.packed += 1
            self._handled_now(sid)
            self._dispatched(packed)

    # -- carriers -----------------------------------------------------------------------

    def _dispatched(self, shipment: Mapping[str, Any]) -> None:
        sid = str(shipment["shipment_id"])
        loop = asyncio.get_running_loop()
        self._road[sid] = Parcel(
            shipment_id=sid,
            warehouse=str(shipment["warehouse"]),
            plan=delivery_plan(self._rng, self.floor),
            due=loop.time() + self._hop(),
        )

    def _hop(self) -> float:
        return self._rng.uniform(self.floor.min_hop_s, self.floor.max_hop_s)

    async def _carry_round(self) -> None:
        now = asyncio.get_running_loop().time()
        for parcel in [p for p in self._road.values() if p.due <= now]:
            await self._track(parcel)

    async def _track(self, parcel: Parcel) -> None:
        milestone = parcel.plan[parcel.step]
        body = {
            "milestone": milestone,
            "time": datetime.now(UTC).isoformat(),
            "place": place(milestone, parcel.warehouse, self._rng),
        }
        path = f"/shipments/{parcel.shipment_id}/tracking"
        response = await self.http.send("POST", path, json=body)
        if response is None:
            return  # the service is away: the carrier tries again next round
        if self.http.json("tracking", response) is None:
            parcel.tries += 1
            if parcel.tries >= self.floor.track_tries:
                self._road.pop(parcel.shipment_id, None)
            return
        if milestone == "failed":
            self.counts.failed_deliveries += 1
        if milestone == "delivered":
            self.counts.delivered += 1
        parcel.step += 1
        if parcel.step >= len(parcel.plan):
            self._road.pop(parcel.shipment_id, None)
        else:
            parcel.due = asyncio.get_running_loop().time() + self._hop()


async def pick_queue(client: httpx.AsyncClient, url: str) -> str:
    """ "3 waves to pick, accuracy 97.2%", from GET /waves and GET /pickers/stats."""
    waves, stats = await asyncio.gather(
        client.get(f"{url}/waves", params={"status": "released", "limit": 1000}),
        client.get(f"{url}/pickers/stats"),
    )
    waves.raise_for_status()
    stats.raise_for_status()
    released = len(waves.json())
    shown = f"{released}+" if released >= 1000 else str(released)
    rows: list[dict[str, Any]] = stats.json()
    picks = sum(int(r["picks"]) for r in rows)
    scans = picks + sum(int(r["refused_scans"]) for r in rows)
    accuracy = f"accuracy {picks / scans:.1%}" if scans else "no scans yet"
    return f"{shown} waves to pick, {accuracy}"


PART = Part(
    traffic=WarehouseFloor,
    probe=Probe("picking", pick_queue),
    # waves every 30 s at the latest, not every 5 min: a demo shows picking within a minute
    pace={"FULFILMENT_RULES__WAVE_WINDOW_S": "30"},
)
