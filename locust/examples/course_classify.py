"""The course's credit-risk locustfile, as learners write it: plain HttpUser, fixed payload, no lab imports.

locust -f examples/course_classify.py -H http://127.0.0.1:8000
"""

from locust import HttpUser, between, task

sample = {
    "seniority": 3,
    "home": "owner",
    "time": 36,
    "age": 26,
    "marital": "single",
    "records": "no",
    "job": "freelance",
    "expenses": 35,
    "income": 0.0,
    "assets": 60000.0,
    "debt": 3000.0,
    "amount": 800,
    "price": 1000,
}


class CreditRiskTestUser(HttpUser):
    wait_time = between(0.01, 2)

    @task
    def classify(self):
        self.client.post("/classify", json=sample)
