"""The compression bench's synthetic support-desk intents: templates x slot fillers, train and held-out test
phrasings (see bench/compress.py's docstring for why the split is held out)."""

from __future__ import annotations

import random

INTENTS = ["billing", "shipping", "returns", "account", "technical", "cancellation"]
# Per intent: TRAIN_TEMPLATES are the only phrasings training sees; TEST_TEMPLATES are held out (never trained on).
# Both hold deliberate near-misses between intents ("refund" for a return vs a billing error, "cancel" an order
# vs return it, an error page on the returns form), labelled by the request's main point, as a desk would.
# fmt: off
TRAIN_TEMPLATES = {
    "billing": [
        "I was charged {amount} twice for order {order}, please refund the duplicate payment",
        "why does my invoice for {month} show {amount} when my plan costs less",
        "you charged me {amount} for shipping on order {order} although delivery was supposed to be free",
        "my card was declined but the money still left my account, what happened to the {amount}",
        "can I get a VAT invoice for the {product} I bought in {month}",
        "the price of the {product} dropped a day after I paid, can you credit the difference",
        "I returned the {product} and got my refund, but you also took a {amount} restocking fee",
        "my {plan} subscription renewed and charged {amount} although I cancelled it last week",
        "the refund for order {order} came back {amount} short of what I paid"],
    "shipping": [
        "where is my order {order}, the tracking has not moved for {days} days",
        "the {carrier} driver says the {product} was delivered but nothing is at my door",
        "can you ship the {product} to a different address, I am travelling next week",
        "how long does express delivery take to {country}",
        "my parcel with the {product} is stuck in customs, what do I need to do",
        "only half of order {order} arrived, when is the rest coming",
        "order {order} is so late that I might cancel it, can you check where it is",
        "the replacement {product} you promised me has still not been delivered",
        "the {carrier} tracking link shows an error, where is my {product} now"],
    "returns": [
        "the {product} does not fit, how do I send it back",
        "I sent back the {product} {days} days ago and still have no refund",
        "the {product} arrived broken, I want a replacement not my money back",
        "do I have to pay for the return label for order {order}",
        "can I exchange the {product} for another colour",
        "the return form rejects order {order}, it is still within thirty days",
        "order {order} came yesterday but I changed my mind, how do I return it for a refund",
        "the {product} stopped working after two days, can I return it",
        "the courier collected my return of the {product} but it still says pending"],
    "account": [
        "I cannot log in, the password reset email never arrives",
        "please change the email address on my profile to a new one",
        "someone else seems to be using my login, I see orders I did not place",
        "how do I delete my account and all my data",
        "the two factor code on my phone stopped working after I changed my number",
        "I want to merge my two profiles so my order history is in one place",
        "I cannot see my old invoices since I changed the email on my profile",
        "my account is locked after too many wrong passwords",
        "please update the delivery address saved in my profile"],
    "technical": [
        "the app crashes every time I open the orders page on my {device}",
        "the checkout button does nothing when I try to pay on my {device}",
        "your website shows an error 500 when I search for {product}",
        "the {product} will not connect to wifi after the last update",
        "I get a blank screen after logging in on my {device}",
        "the tracking page keeps loading forever on my {device}",
        "the returns page shows an error when I press submit on my {device}",
        "the password reset link opens a page that says error 404",
        "the payment page times out on my {device} and I cannot tell if I paid"],
    "cancellation": [
        "please cancel order {order} before it ships",
        "I want to cancel my {plan} subscription at the end of this month",
        "stop the automatic renewal of my {plan} plan, I no longer need it",
        "cancel the {product} I ordered by mistake an hour ago",
        "how do I end my {plan} membership without paying another month",
        "I ordered the {product} twice, cancel one of them please",
        "cancel order {order}, the delivery date is too late for me",
        "I do not want the {product} anymore and it has not shipped yet, please cancel it",
        "please cancel my {plan} plan and make sure I am not charged again"],
}
TEST_TEMPLATES = {
    "billing": [
        "there is a payment of {amount} on my bank statement from you that I do not recognise",
        "I was billed for the {plan} plan but I only signed up for the free trial",
        "the invoice for order {order} has the wrong company name, I need a corrected one for my expenses",
        "you took {amount} from my card for an order I cancelled, when do I get it back",
        "the discount code was accepted at checkout but I was still charged the full {amount}",
        "my refund for the returned {product} was only partly paid, {amount} is missing"],
    "shipping": [
        "the courier left a note saying they could not deliver the {product}, where can I collect it",
        "is it possible to get order {order} delivered on a Saturday",
        "my package went to my old address, can you redirect it",
        "the box arrived open and the {product} was not inside",
        "do you send parcels to {country} and what does postage cost",
        "{carrier} sent my parcel back to you as undeliverable, please post it again"],
    "returns": [
        "I would like to send the {product} back and get store credit instead",
        "what is your policy on returning opened items like the {product}",
        "the {product} looks nothing like the pictures, I want my money back",
        "can I return the {product} in one of your shops instead of posting it",
        "the {product} I received is the wrong size, can you swap it for a larger one",
        "the {product} I returned reached you {days} days ago, but there is no refund yet"],
    "account": [
        "how can I change the phone number linked to my login",
        "I never signed up but I keep getting emails about my new profile",
        "I forgot which email I registered with, how do I get back in",
        "please remove my saved card from my profile",
        "my account says it is suspended and I do not know why",
        "can I add my partner as a second user on our {plan} plan"],
    "technical": [
        "the app freezes when I upload a photo of the {product} on my {device}",
        "I cannot scroll past the first item in my basket in the {device} app",
        "the {product} companion app will not pair over bluetooth",
        "your site keeps telling me my session expired every few seconds",
        "the cancel subscription button gives an error on my {device}",
        "delivery notifications never show up on my {device}"],
    "cancellation": [
        "please do not send order {order}, I no longer need it",
        "I would like to terminate my {plan} contract",
        "how can I stop my {plan} subscription from renewing next year",
        "I changed my mind about the {product}, stop the order before it leaves the warehouse",
        "I started the {plan} trial by accident, end it before I am billed",
        "withdraw order {order}, a delivery estimate of {days} weeks is far too long"],
}
TRAIN_SLOTS = {
    "amount": ["$19.99", "$5", "40 euros", "$120", "£12.50", "$7.49"],
    "order": ["55-1023", "A-77812", "#90211", "1182-44", "ZX-3301"],
    "month": ["March", "June", "October", "January"],
    "product": ["headphones", "running shoes", "laptop bag", "coffee maker", "phone case", "winter jacket",
                "smart watch", "desk lamp"],
    "days": ["three", "five", "ten", "twelve"], "carrier": ["DHL", "UPS", "FedEx", "postal"],
    "country": ["Norway", "Canada", "Japan", "Brazil"],
    "device": ["iPhone", "Android phone", "laptop", "tablet"],
    "plan": ["premium", "family", "yearly", "basic"],
}
HELD_OUT_SLOTS = {  # test rows draw from these as well as TRAIN_SLOTS
    "amount": ["$64", "9.90 euros", "£230"], "order": ["QK-5520", "#31877"], "month": ["May", "December"],
    "product": ["blender", "yoga mat", "hiking backpack", "e-reader"], "days": ["two", "eight"],
    "carrier": ["DPD", "Royal Mail"], "country": ["Mexico", "Kenya"], "device": ["iPad", "Chromebook"],
    "plan": ["student", "business"],
}
OPENERS = ["", "", "hi,", "hello team,", "good morning.", "hey, quick question:",
           "sorry to bother you again,", "I have been a customer for {days} years and"]
CLOSERS = ["", "", "thanks.", "please help.", "this is really frustrating.", "the shipping itself was fast.",
           "my account details are correct.", "I paid with my usual card.",
           "I do not want to cancel anything.", "the app works fine otherwise.",
           "I already checked the returns page.",
           "I have waited {days} days for an answer and would appreciate a quick reply."]
TEST_OPENERS = ["dear support,", "hello, I need some help."]
TEST_CLOSERS = ["kind regards.", "the website was no help at all.", "I might return other things too."]
# fmt: on
ANSWERS = {i: f"This is a {i} request. A {i} agent will reply within one day." for i in INTENTS}


def intent_rows(n: int, seed: int, held_out: bool = False) -> list[dict]:
    """``n`` distinct {"text", "label"} rows, intents in turn, slots and distractor clauses at random.

    ``held_out`` phrases them with TEST_TEMPLATES only, and adds the held-out slot values, openers and closers.
    """
    templates = TEST_TEMPLATES if held_out else TRAIN_TEMPLATES
    slots = {k: v + HELD_OUT_SLOTS[k] if held_out else v for k, v in TRAIN_SLOTS.items()}
    openers = OPENERS + TEST_OPENERS if held_out else OPENERS
    closers = CLOSERS + TEST_CLOSERS if held_out else CLOSERS
    rng, seen, rows = random.Random(seed), set(), []
    while len(rows) < n:
        label = INTENTS[len(rows) % len(INTENTS)]
        parts = [rng.choice(openers), rng.choice(templates[label]), rng.choice(closers)]
        if rng.random() < 0.3:
            parts.append(rng.choice(closers))
        text = " ".join(p for p in parts if p)
        text = text.format(**{k: rng.choice(v) for k, v in slots.items()})
        text = text[0].upper() + text[1:]
        if text not in seen:
            seen.add(text)
            rows.append({"text": text, "label": label})
    rng.shuffle(rows)
    return rows
