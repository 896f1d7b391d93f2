"""A course-style house-price locustfile: plain HttpUser, no lab imports.

locust -f examples/course_predict.py -H http://127.0.0.1:8000
"""

from locust import HttpUser, between, task


class HousePriceUser(HttpUser):
    wait_time = between(0.01, 2)

    @task
    def predict(self):
        self.client.post("/predict", json={"sqft": 1500, "bedrooms": 3, "location": "NY"})
