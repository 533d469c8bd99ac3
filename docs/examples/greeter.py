from pydantic import BaseModel

from aegis_actors import ServiceActor, ServiceError, rpc


class Hello(BaseModel):
    name: str


class Greeter(ServiceActor):
    service_name = "greeter"
    version = "1.0.0"

    def __init__(self) -> None:
        self.greetings = 0  # private state: one message at a time, no locks

    @rpc
    async def hello(self, params: Hello) -> str:
        if not params.name.strip():
            raise ServiceError(422, "VALIDATION_ERROR", "name must not be blank")
        self.greetings += 1
        return f"Hello, {params.name}!"

    @rpc
    async def stats(self) -> dict[str, object]:
        return {"instance": self.instance_id, "greetings": self.greetings}
